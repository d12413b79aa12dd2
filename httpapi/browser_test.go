package httpapi

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds a Chromium binary; "" if there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

type pageStats struct {
	VideoFramesDecoded   int `json:"videoFramesDecoded"`
	VideoPacketsReceived int `json:"videoPacketsReceived"`
	VideoKeyRequests     int `json:"videoKeyRequests"`
	AudioPacketsReceived int `json:"audioPacketsReceived"`
}

// TestBrowserTwoPages: two headless Chromium pages (fake camera and
// microphone) join one room through the web page, and each decodes the
// other's video and receives its audio. It skips without Chromium unless
// TROUPE_BROWSER_TESTS=1, as CI sets.
func TestBrowserTwoPages(t *testing.T) {
	bin := chromiumPath()
	if bin == "" {
		if os.Getenv("TROUPE_BROWSER_TESTS") == "1" {
			t.Fatal("TROUPE_BROWSER_TESTS=1 but no chromium binary found")
		}
		t.Skip("no chromium binary; set TROUPE_BROWSER_TESTS=1 to require it")
	}
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []chromedp.ExecAllocatorOption{
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
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Keep ICE on loopback: no mDNS host names.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, opts...)
	defer allocCancel()
	browser, browserCancel := chromedp.NewContext(allocCtx)
	defer browserCancel()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	start := time.Now()
	names := []string{"alice", "bob"}
	tabs := make([]context.Context, len(names))
	for i, name := range names {
		tab, tabCancel := chromedp.NewContext(browser)
		defer tabCancel()
		tabs[i] = tab
		err := chromedp.Do(tab,
			chromedp.Navigate(s.srv.URL+"/rooms/browser?name="+name),
			chromedp.WaitVisible("#join"),
			chromedp.Click("#join"),
		)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s joined after %v", name, time.Since(start))
	}
	for i, tab := range tabs {
		deadline := time.Now().Add(40 * time.Second)
		for {
			st, err := chromedp.Run(tab, chromedp.Evaluate[pageStats](`window.troupe.stats()`, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("%s: %v", names[i], err)
			}
			state, err := chromedp.Run(tab, chromedp.Evaluate[string](
				`window.troupe.state + " / " + window.troupe.connection + " / " + document.getElementById("error").textContent`))
			if err != nil {
				t.Fatalf("%s: %v", names[i], err)
			}
			if st.VideoFramesDecoded > 0 && st.AudioPacketsReceived > 0 {
				t.Logf("%s: %d video frames decoded, %d audio packets (%s) after %v", names[i], st.VideoFramesDecoded, st.AudioPacketsReceived, state, time.Since(start))
				break
			}
			if time.Now().After(deadline) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				mfs, _ := s.reg.Gather()
				for _, mf := range mfs {
					if strings.HasPrefix(mf.GetName(), "troupe_rtc_") {
						t.Logf("%s", mf.String())
					}
				}
				t.Fatalf("%s: stats %+v, state %q", names[i], st, state)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if n := len(s.participants(t, "browser")); n != 2 {
		t.Errorf("%d participants, want 2", n)
	}
	// Leave through the page: the server answers left and the room empties.
	// A DOM click: the tiles' layout can keep chromedp's pointer click
	// waiting for the button to settle.
	if _, err := chromedp.Run(tabs[0], chromedp.Evaluate[bool](`(() => { const b = document.getElementById("leave"); b.click(); return !b.disabled; })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "alice to leave", func() bool { return len(s.participants(t, "browser")) == 1 })
	browserCancel()
}
