package firefoxtest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

//go:embed driver.js
var driverJS []byte

// The Front's own paths; every other request goes to the server under
// test.
const (
	driverPath = "/firefoxtest/driver.js"
	reportPath = "/firefoxtest/report"
	// pageParam, in the query of a page's address, names the Page whose
	// driver the Front adds to it.
	pageParam = "firefoxtest"
)

// maxReport bounds a report's body: two SDPs and the stats of a few
// streams fit many times over.
const maxReport = 4 << 20

// Front stands before the server under test: it forwards every request
// (WebSockets too) to it, and adds the driver to the pages it opened.
// Pages reach the server through URL, their origin.
type Front struct {
	URL string

	t        testing.TB
	upstream *url.URL
	srv      *httptest.Server

	mu    sync.Mutex // guards the following
	pages map[string]*Page
	errs  []string // requests that could not be forwarded
}

// NewFront starts a Front for the server at upstream (an http:// URL); it
// closes when the test ends, after the Firefox processes opened through
// it.
func NewFront(t testing.TB, upstream string) *Front {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("firefoxtest: upstream %q is not an http:// URL (%v)", upstream, err)
	}
	f := &Front{t: t, upstream: u, pages: map[string]*Page{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The server sees the page's own host, which its WebSocket's
			// Origin names.
			r.Out.Host = r.In.Host
			// A page is read whole to add the driver: plain, not gzipped.
			r.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: f.addDriver,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.mu.Lock()
			f.errs = append(f.errs, fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err))
			f.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
		// A forwarded WebSocket that ends as Firefox is killed is no fault.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+driverPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(driverJS)
	})
	mux.HandleFunc("POST "+reportPath, f.report)
	mux.Handle("/", proxy)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// addDriver adds the driver's script to a page opened through Open.
func (f *Front) addDriver(resp *http.Response) error {
	id := resp.Request.URL.Query().Get(pageParam)
	if id == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReport))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read the page: %w", err)
	}
	tag := fmt.Sprintf(`<script src="%s?page=%s"></script></body>`, driverPath, url.QueryEscape(id))
	if !bytes.Contains(body, []byte("</body>")) {
		return errors.New("the page has no </body> to add the driver before")
	}
	body = bytes.Replace(body, []byte("</body>"), []byte(tag), 1)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// report takes a driver's report and answers with the commands its page
// has not done yet.
func (f *Front) report(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	p := f.pages[r.URL.Query().Get("page")]
	f.mu.Unlock()
	if p == nil {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	var rep Report
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReport))
	if err := dec.Decode(&rep); err != nil {
		http.Error(w, "report: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.take(rep))
}

// forwardErrors are the requests the Front could not forward so far.
func (f *Front) forwardErrors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

// Open starts a Firefox on the page at path (with its query: "/rooms/r?name=a")
// through the Front, and waits for the page's first report.
func (f *Front) Open(t testing.TB, path string) *Page {
	t.Helper()
	p := f.newPage()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	p.Firefox = Start(t, f.URL+path+sep+pageParam+"="+p.id)
	p.Wait(t, "the page's first report", func(Report) bool { return true })
	return p
}

// newPage registers a page, which Open then opens.
func (f *Front) newPage() *Page {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &Page{front: f, id: strconv.Itoa(len(f.pages) + 1)}
	f.pages[p.id] = p
	return p
}

// command is something a page's driver does: click an element, submit a
// form, or set an input's value.
type command struct {
	Seq   int    `json:"seq"`
	Op    string `json:"op"` // click, submit or set
	ID    string `json:"id"` // the element's id
	Value string `json:"value,omitempty"`
}

// Page is a page opened in a Firefox of its own, as its driver reports it.
type Page struct {
	Firefox *Process
	// More, if not nil, says more of what the server sees, for a failure's
	// message. Set it before the page's first wait.
	More func() string

	front *Front
	id    string

	mu      sync.Mutex // guards the following
	last    Report
	reports int
	pending []command // not done yet, by seq
	seq     int       // of the last command queued
}

// queue numbers c and queues it for the driver.
func (p *Page) queue(c command) command {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	c.Seq = p.seq
	p.pending = append(p.pending, c)
	return c
}

// take records rep and returns the commands not done yet.
func (p *Page) take(rep Report) []command {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = rep
	p.reports++
	for len(p.pending) > 0 && p.pending[0].Seq <= rep.Done {
		p.pending = p.pending[1:]
	}
	return append([]command{}, p.pending...)
}

// Report is the page's last report, and how many came so far.
func (p *Page) Report() (Report, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.reports
}

// Wait waits until a report of the page satisfies cond, and returns it. It
// fails t, saying what the page showed, if none does within Deadline or
// Firefox ends first.
func (p *Page) Wait(t testing.TB, what string, cond func(Report) bool) Report {
	t.Helper()
	var rep Report
	poll.Within(pageWait{t, p}, Deadline, what, func() bool {
		if exited, err := p.Firefox.Exited(); exited {
			t.Fatalf("firefox ended (%v) while waiting for %s: %s", err, what, p.Describe())
		}
		var n int
		rep, n = p.Report()
		return n > 0 && cond(rep)
	})
	return rep
}

// Click clicks the element id, through the DOM as a person's click would,
// and waits until the driver did.
func (p *Page) Click(t testing.TB, id string) {
	t.Helper()
	p.do(t, command{Op: "click", ID: id})
}

// Submit submits the form id, as its submit button would, and waits until
// the driver did.
func (p *Page) Submit(t testing.TB, id string) {
	t.Helper()
	p.do(t, command{Op: "submit", ID: id})
}

// SetValue types value into the input id, and waits until the driver did.
func (p *Page) SetValue(t testing.TB, id, value string) {
	t.Helper()
	p.do(t, command{Op: "set", ID: id, Value: value})
}

func (p *Page) do(t testing.TB, c command) {
	t.Helper()
	c = p.queue(c)
	rep := p.Wait(t, fmt.Sprintf("the page to %s #%s", c.Op, c.ID), func(r Report) bool { return r.Done >= c.Seq })
	for _, e := range rep.Errors {
		if strings.HasPrefix(e, fmt.Sprintf("command %d ", c.Seq)) {
			t.Fatalf("the page could not %s #%s: %s", c.Op, c.ID, e)
		}
	}
}

// Describe says what the page showed last, for a failure's message.
func (p *Page) Describe() string {
	rep, n := p.Report()
	if n == 0 {
		return "no report from the page yet; firefox wrote:\n" + p.Firefox.Output()
	}
	s := fmt.Sprintf("state %q, connection %q, notice %q, stats %+v, inbound %+v, outbound %+v, transceivers %+v, errors %q",
		rep.State, rep.Connection, rep.Notice, rep.Stats, rep.Inbound, rep.Outbound, rep.Transceivers, rep.Errors)
	s += "\nthe page's local description: " + sdpOutline(rep.LocalSDP) + "\nits remote description: " + sdpOutline(rep.RemoteSDP)
	if p.More != nil {
		s += "\n" + p.More()
	}
	if errs := p.front.forwardErrors(); len(errs) > 0 {
		s += fmt.Sprintf("; the front could not forward %q", errs)
	}
	return s
}

// sdpOutline is what an SDP says of its media sections, for a failure's
// message: each one's kind, mid, direction, stream and codecs.
func sdpOutline(sdp string) string {
	var b strings.Builder
	for _, l := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(l, "m="):
			b.WriteString("\n  " + l)
		case strings.HasPrefix(l, "a=mid:"), strings.HasPrefix(l, "a=msid:"), strings.HasPrefix(l, "a=rtpmap:"),
			strings.HasPrefix(l, "a=simulcast:"), l == "a=sendrecv", l == "a=sendonly", l == "a=recvonly", l == "a=inactive":
			b.WriteString(" " + strings.TrimPrefix(l, "a="))
		}
	}
	return b.String()
}

// pageWait is the test as a wait on a page sees it: a wait that fails
// says what the page shows.
type pageWait struct {
	testing.TB
	p *Page
}

func (w pageWait) Fatalf(format string, args ...any) {
	w.TB.Helper()
	w.TB.Fatal(fmt.Sprintf(format, args...) + ": " + w.p.Describe())
}
