package firefoxtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
)

const testPage = "<!doctype html><html><body><p>page</p></body></html>"

// upstream is a server as the Front sees Troupe's: a page, and a WebSocket
// that echoes what it gets and checks that the Host it sees is the page's.
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(testPage)))
		_, _ = io.WriteString(w, testPage)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // checks Origin against Host
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		_ = c.Write(r.Context(), typ, b)
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// The Front adds the driver to the pages it opened, and to no other.
func TestFrontAddsDriver(t *testing.T) {
	leaktest.Check(t)
	f := NewFront(t, upstream(t).URL)
	p := f.newPage()

	resp, body := get(t, f.URL+"/page?"+pageParam+"="+p.id)
	want := strings.Replace(testPage, "</body>", `<script src="/firefoxtest/driver.js?page=`+p.id+`"></script></body>`, 1)
	if body != want || resp.ContentLength != int64(len(want)) {
		t.Errorf("the opened page (length %d) is %q, want %q", resp.ContentLength, body, want)
	}
	if _, body := get(t, f.URL+"/page"); body != testPage {
		t.Errorf("another page is %q, want it as the server sent it", body)
	}
	resp, body = get(t, f.URL+driverPath)
	if body != string(driverJS) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("the driver is served as %q", resp.Header.Get("Content-Type"))
	}
}

// A WebSocket goes through the Front to the server, which sees the page's
// origin as its own.
func TestFrontWebSocket(t *testing.T) {
	leaktest.Check(t)
	f := NewFront(t, upstream(t).URL)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {f.URL}}})
	if err != nil {
		t.Fatalf("dial through the front: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "hello" {
		t.Fatalf("echo: %q, %v", b, err)
	}
}

// A report is kept, and answered with the commands the page has not done;
// a report of no page, or not JSON, is refused.
func TestFrontReports(t *testing.T) {
	leaktest.Check(t)
	f := NewFront(t, upstream(t).URL)
	p := f.newPage()
	report := f.URL + reportPath + "?page=" + p.id

	if code, body := post(t, report, `{"done":0,"state":"idle"}`); code != http.StatusOK || body != "[]" {
		t.Fatalf("first report: %d %s", code, body)
	}
	if rep, n := p.Report(); n != 1 || rep.State != "idle" {
		t.Fatalf("after one report: %d reports, last %+v", n, rep)
	}
	p.queue(command{Op: "click", ID: "join"})
	p.queue(command{Op: "set", ID: "name", Value: "fox"})
	want := `[{"seq":1,"op":"click","id":"join"},{"seq":2,"op":"set","id":"name","value":"fox"}]`
	if _, body := post(t, report, `{"done":0}`); body != want {
		t.Errorf("commands %s, want %s", body, want)
	}
	// Done with the first: the second is sent again until it is done too.
	if _, body := post(t, report, `{"done":1}`); body != `[{"seq":2,"op":"set","id":"name","value":"fox"}]` {
		t.Errorf("after the first is done: %s", body)
	}
	if _, body := post(t, report, `{"done":2,"state":"joined"}`); body != "[]" {
		t.Errorf("after both are done: %s", body)
	}
	if rep, n := p.Report(); n != 4 || rep.State != "joined" || rep.Done != 2 {
		t.Errorf("after four reports: %d reports, last %+v", n, rep)
	}

	if code, _ := post(t, f.URL+reportPath+"?page=9", `{}`); code != http.StatusNotFound {
		t.Errorf("a report of no page: %d", code)
	}
	if code, _ := post(t, report, `{"done":`); code != http.StatusBadRequest {
		t.Errorf("a report cut short: %d", code)
	}
	if _, n := p.Report(); n != 4 {
		t.Errorf("refused reports were counted: %d", n)
	}
}
