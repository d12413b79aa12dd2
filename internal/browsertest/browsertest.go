// Package browsertest runs the web page's tests in a real browser: a
// headless Chromium with a fake camera and microphone, driven through
// chromedp. The tests of httpapi (one server) and cmd/troupe (a cluster)
// share it. They run only with TROUPE_BROWSER_TESTS=1 (as CI sets), where
// Chromium missing is a failure: a browser beside the Go suites on a
// machine of two cores would make both slow and flaky. Screenshot saves
// what a page shows at a given size in test-artifacts/ for people to look
// at. Only tests import it.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/internal/poll"
)

// Deadline bounds each wait of a browser test: generous, since a loaded
// machine may take many times the usual seconds. The browser itself lives
// longer, so that a wait that fails says what the page shows.
const Deadline = 90 * time.Second

// chromiumPath finds a Chromium binary; "" if there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium with a fake camera and microphone and
// returns its context; tabs are chromedp.NewContext of it (Open). opts
// add to its command line (TrustCertificate, UDPBlocked). It skips
// unless TROUPE_BROWSER_TESTS=1. Chromium stops when the
// test ends, before the cleanups registered earlier (the servers) run.
func New(t *testing.T, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if os.Getenv("TROUPE_BROWSER_TESTS") != "1" {
		t.Skip("browser test: set TROUPE_BROWSER_TESTS=1 to run it (needs Chromium)")
	}
	bin := chromiumPath()
	if bin == "" {
		t.Fatal("TROUPE_BROWSER_TESTS=1 but no chromium binary found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*Deadline)
	opts = append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", writeVoice(t, t.TempDir())),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Keep ICE on loopback: no mDNS host names.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	}, opts...)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, opts...)
	browser, browserCancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		browserCancel()
		allocCancel()
		cancel()
	})
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// Open opens url in a new tab of browser and waits for the page's Join
// button.
func Open(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate(url), chromedp.WaitVisible("#join")); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return tab
}

// Eval evaluates a JavaScript expression in tab; a promise is awaited.
func Eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// State is what a tab says of itself (address, state line, notice), for
// the message of a wait that failed.
func State(tab context.Context) string {
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](
		`location.href + " | " + document.getElementById("state").textContent + " | " + document.getElementById("notice").textContent`))
	if err != nil {
		return err.Error()
	}
	return s
}

// PageWait is the test as a wait on Tab sees it: a wait that fails says
// what the page shows, and what More says.
type PageWait struct {
	testing.TB
	Tab  context.Context
	More func() string // nil: nothing more
}

// Fatalf fails the test with the page's state.
func (p PageWait) Fatalf(format string, args ...any) {
	p.TB.Helper()
	msg := fmt.Sprintf(format, args...) + ": " + State(p.Tab)
	if p.More != nil {
		msg += "; " + p.More()
	}
	p.TB.Fatal(msg)
}

// Wait waits until the JavaScript expression cond is true in tab.
func Wait(t *testing.T, tab context.Context, what, cond string) {
	t.Helper()
	poll.Within(PageWait{TB: t, Tab: tab}, Deadline, what, func() bool { return Eval[bool](t, tab, cond) })
}

// Click clicks an element through the DOM: the tiles' layout can keep
// chromedp's pointer click waiting for a button to settle.
func Click(t *testing.T, tab context.Context, id string) {
	t.Helper()
	Eval[bool](t, tab, fmt.Sprintf(`(() => { document.getElementById(%q).click(); return true; })()`, id))
}

// WatchStates makes tab record every text its state line shows from now
// on, for SeenStates: a state that passes quickly (reconnecting) is still
// seen.
func WatchStates(t *testing.T, tab context.Context) {
	t.Helper()
	Eval[bool](t, tab, `(() => {
		window.seenStates = [];
		const el = document.getElementById("state");
		new MutationObserver(() => window.seenStates.push(el.textContent)).observe(el, {childList: true, characterData: true, subtree: true});
		return true;
	})()`)
}

// SeenStates is what the state line of tab showed since WatchStates.
func SeenStates(t *testing.T, tab context.Context) []string {
	t.Helper()
	return Eval[[]string](t, tab, `window.seenStates`)
}

// Artifacts is the directory of t's artifacts (the page's screenshots):
// $TROUPE_ARTIFACTS, or test-artifacts/ at the module's root (which git
// ignores), then a directory named for the test. Test runs keep them for
// people to look at; no test reads them back.
func Artifacts(t *testing.T) string {
	t.Helper()
	root := os.Getenv("TROUPE_ARTIFACTS")
	if root == "" {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				t.Fatal("no go.mod above the test's directory")
			}
			dir = parent
		}
		root = filepath.Join(dir, "test-artifacts")
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot shows tab at width x height CSS pixels (a phone's, in
// portrait, when narrower than tall), lets the page lay itself out, and
// saves what it shows as name.png in Artifacts. It returns the file's path.
func Screenshot(t *testing.T, tab context.Context, width, height int64, name string) string {
	t.Helper()
	var opts []chromedp.EmulateViewportOption
	if width < height {
		opts = append(opts, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(width, height, opts...)); err != nil {
		t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
	// Two frames: the resize observers run, then the layout they set is drawn.
	Eval[bool](t, tab, `new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))`)
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(Artifacts(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
