package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/browsertest"
	"github.com/troupe-media/troupe/internal/poll"
)

// The browser helpers of internal/browsertest, by the names this
// package's tests know them.
const browserDeadline = browsertest.Deadline

type pageWait = browsertest.PageWait

func newBrowser(t *testing.T) context.Context { t.Helper(); return browsertest.New(t) }

func openPage(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	return browsertest.Open(t, browser, url)
}

func evalJS[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	return browsertest.Eval[T](t, tab, expr)
}

func pageState(tab context.Context) string { return browsertest.State(tab) }

func waitPage(t *testing.T, tab context.Context, what, cond string) {
	t.Helper()
	browsertest.Wait(t, tab, what, cond)
}

func clickJS(t *testing.T, tab context.Context, id string) { t.Helper(); browsertest.Click(t, tab, id) }

type pageNotice struct {
	Text  string `json:"text"`
	Fault bool   `json:"fault"`
	Color string `json:"color"`
}

func notice(t *testing.T, tab context.Context) pageNotice {
	t.Helper()
	return evalJS[pageNotice](t, tab, `(() => { const n = document.getElementById("notice");
		return {text: n.textContent, fault: n.classList.contains("fault"), color: getComputedStyle(n).color}; })()`)
}

// faultColor is the notice's colour for a fault, as computed styles give it.
const faultColor = "rgb(255, 128, 128)"

type pageStats struct {
	VideoFramesDecoded   int `json:"videoFramesDecoded"`
	VideoPacketsReceived int `json:"videoPacketsReceived"`
	VideoKeyRequests     int `json:"videoKeyRequests"`
	AudioPacketsReceived int `json:"audioPacketsReceived"`
	InboundVideo         int `json:"inboundVideo"` // video streams received
	// VideoSizes is the picture size of each video stream received, as
	// decoded: "640x360".
	VideoSizes []string `json:"videoSizes"`
}

// TestBrowserTwoPages: two headless Chromium pages (fake camera and
// microphone) join one room through the web page, and each decodes the
// other's video and receives its audio.
func TestBrowserTwoPages(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)

	start := time.Now()
	names := []string{"alice", "bob"}
	tabs := make([]context.Context, len(names))
	for i, name := range names {
		tabs[i] = openPage(t, browser, s.srv.URL+"/rooms/browser?name="+name)
		clickJS(t, tabs[i], "join")
		t.Logf("%s joined after %v", name, time.Since(start))
	}
	for i, tab := range tabs {
		var st pageStats
		more := func() string {
			out := fmt.Sprintf("stats %+v", st)
			mfs, _ := s.reg.Gather()
			for _, mf := range mfs {
				if strings.HasPrefix(mf.GetName(), "troupe_rtc_") {
					out += "\n" + mf.String()
				}
			}
			return out
		}
		poll.Within(pageWait{TB: t, Tab: tab, More: more}, browserDeadline, names[i]+"'s decoded video and audio", func() bool {
			st = evalJS[pageStats](t, tab, `window.troupe.stats()`)
			return st.VideoFramesDecoded > 0 && st.AudioPacketsReceived > 0
		})
		t.Logf("%s: %d video frames decoded, %d audio packets (%s) after %v", names[i], st.VideoFramesDecoded, st.AudioPacketsReceived, pageState(tab), time.Since(start))
	}
	if n := len(s.participants(t, "browser")); n != 2 {
		t.Errorf("%d participants, want 2", n)
	}
	// Leave through the page: the server answers left and the room empties.
	clickJS(t, tabs[0], "leave")
	poll.Within(t, browserDeadline, "alice to leave", func() bool { return len(s.participants(t, "browser")) == 1 })
}

// TestBrowserPage: the page's own behaviour in dev mode. Its icon loads;
// a disabled Leave looks disabled; Join says what is missing instead of
// doing nothing; the room and name stay in the address, so that after a
// reload Join works at once; a normal leave is not shown as an error; and
// the page joins again after leaving.
func TestBrowserPage(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)
	tab := openPage(t, browser, s.srv.URL+"/")

	width := evalJS[int](t, tab, `(async () => {
		const link = document.querySelector('link[rel="icon"]');
		if (!link) return 0;
		const img = new Image();
		img.src = link.href;
		await img.decode();
		return img.naturalWidth;
	})()`)
	if width != 32 {
		t.Errorf("the page's icon is %d pixels wide, want 32", width)
	}

	type buttons struct {
		LeaveDisabled bool   `json:"leaveDisabled"`
		Leave         string `json:"leave"`
		Mute          string `json:"mute"`
		Join          string `json:"join"`
	}
	const buttonColors = `(() => {
		const bg = (id) => getComputedStyle(document.getElementById(id)).backgroundColor;
		return {leaveDisabled: document.getElementById("leave").disabled, leave: bg("leave"), mute: bg("mute-audio"), join: bg("join")};
	})()`
	b := evalJS[buttons](t, tab, buttonColors)
	if !b.LeaveDisabled || b.Leave != b.Mute || b.Leave == b.Join {
		t.Errorf("before joining, Leave (disabled %v) is %s; a disabled button is %s, an active one %s", b.LeaveDisabled, b.Leave, b.Mute, b.Join)
	}

	clickJS(t, tab, "join")
	if n := notice(t, tab); !n.Fault || !strings.Contains(n.Text, "room id") {
		t.Errorf("Join without a room: notice %+v", n)
	}
	if err := chromedp.Do(tab, chromedp.SetValue("#room", "page")); err != nil {
		t.Fatal(err)
	}
	clickJS(t, tab, "join")
	if n := notice(t, tab); !n.Fault || !strings.Contains(n.Text, "name") {
		t.Errorf("Join without a name: notice %+v", n)
	}
	if state := evalJS[string](t, tab, `window.troupe.state`); state != "idle" {
		t.Errorf("state %q after refused joins, want idle", state)
	}

	if err := chromedp.Do(tab, chromedp.SetValue("#name", "Carol Ann")); err != nil {
		t.Fatal(err)
	}
	clickJS(t, tab, "join")
	waitPage(t, tab, "the page to join", `window.troupe.state === "joined"`)
	if loc := evalJS[string](t, tab, `location.pathname + location.search`); loc != "/rooms/page?name=Carol+Ann" {
		t.Errorf("address after joining: %s", loc)
	}
	if n := notice(t, tab); n.Text != "" {
		t.Errorf("notice after joining: %+v", n)
	}
	b = evalJS[buttons](t, tab, buttonColors)
	if b.LeaveDisabled || b.Leave == b.Mute || b.Leave == b.Join {
		t.Errorf("in the room, Leave (disabled %v) is %s, like a disabled (%s) or Join (%s) button", b.LeaveDisabled, b.Leave, b.Mute, b.Join)
	}

	if err := chromedp.Do(tab, chromedp.Reload(), chromedp.WaitVisible("#join")); err != nil {
		t.Fatal(err)
	}
	type fields struct {
		Room string `json:"room"`
		Name string `json:"name"`
	}
	if f := evalJS[fields](t, tab, `({room: document.getElementById("room").value, name: document.getElementById("name").value})`); f != (fields{"page", "Carol Ann"}) {
		t.Errorf("after a reload the fields are %+v", f)
	}
	clickJS(t, tab, "join")
	waitPage(t, tab, "the reloaded page to join", `window.troupe.state === "joined"`)

	clickJS(t, tab, "leave")
	waitPage(t, tab, "the page to leave", `window.troupe.state === "left"`)
	if n := notice(t, tab); n.Fault || n.Color == faultColor || n.Text != "You left the room." {
		t.Errorf("after Leave the notice is %+v", n)
	}
	poll.Within(t, browserDeadline, "the room to empty", func() bool { return len(s.participants(t, "page")) == 0 })

	// The socket of the call just left closes late; it must not end the next one.
	clickJS(t, tab, "join")
	waitPage(t, tab, "the page to join again", `window.troupe.state === "joined" && window.troupe.connection === "connected"`)
	if n := len(s.participants(t, "page")); n != 1 {
		t.Errorf("%d participants after joining again, want 1", n)
	}
}

// TestBrowserViewers: those who only watch get no tile, whether a page
// joined with a subscriber token or a WHEP player; the page names them
// instead. A publisher whose camera is off shows their initial, not a
// black box.
func TestBrowserViewers(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"view","name":"View"}`)
	browser := newBrowser(t)

	join := func(identity string, role auth.Role) (context.Context, string) {
		tab := openPage(t, browser, s.srv.URL+"/rooms/view")
		clickJS(t, tab, "join")
		if n := notice(t, tab); !n.Fault || !strings.Contains(n.Text, "join token") {
			t.Errorf("Join without a token: notice %+v", n)
		}
		if err := chromedp.Do(tab, chromedp.SetValue("#token", s.joinToken(t, "view", identity, role))); err != nil {
			t.Fatal(err)
		}
		clickJS(t, tab, "join")
		waitPage(t, tab, identity+" to join", `window.troupe.state === "joined"`)
		return tab, evalJS[string](t, tab, `window.troupe.participantId`)
	}
	alice, aliceID := join("alice", auth.RolePublisher)
	watcher, watcherID := join("watcher", auth.RoleSubscriber)

	whep := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	whepToken := s.joinToken(t, "view", "player", auth.RoleSubscriber)
	r := s.whipPost(t, "/whep/view", whepToken, "application/sdp", gatheredOffer(t, whep))
	mustStatus(t, r, http.StatusCreated)
	loc := r.header.Get("Location")
	whepID := loc[strings.LastIndex(loc, "/")+1:]
	if err := whep.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	poll.Within(t, browserDeadline, "the WHEP player to connect", func() bool { return whep.ConnectionState() == webrtc.PeerConnectionStateConnected })
	defer func() { mustStatus(t, s.do(t, http.MethodDelete, loc, "", bearer(whepToken)), http.StatusOK) }()

	tiles := `[...document.querySelectorAll(".tile")].map((t) => t.dataset.participant).join(" ")`
	viewers := `[...document.querySelectorAll("#viewers .viewer")].map((v) => v.dataset.participant + "=" + v.textContent).join(" ")`
	// alice's page: her own tile, and the two viewers named, not shown.
	waitPage(t, alice, "alice's page to list the viewers",
		fmt.Sprintf(`%s === %q && %s === %q`, tiles, aliceID, viewers, watcherID+"=watcher name "+whepID+"=player name"))
	// The watcher's page: alice's video, and itself named as watching.
	waitPage(t, watcher, "the watcher's page to show alice's video",
		fmt.Sprintf(`%s === %q && !document.querySelector(".tile").classList.contains("no-video")`, tiles, aliceID))
	if got := evalJS[string](t, watcher, viewers); got != watcherID+"=watcher name (you) "+whepID+"=player name" {
		t.Errorf("the watcher's page lists the viewers as %q", got)
	}

	// alice stops her camera: her tile shows her initial on both pages.
	clickJS(t, alice, "mute-video")
	placeholder := fmt.Sprintf(`(() => { const t = document.querySelector('.tile[data-participant=%q]');
		return t !== null && t.classList.contains("no-video") && t.querySelector(".avatar").textContent === "A" &&
			getComputedStyle(t.querySelector(".avatar")).display !== "none"; })()`, aliceID)
	waitPage(t, watcher, "alice's initial on the watcher's page", placeholder)
	waitPage(t, alice, "alice's initial on her own page", placeholder)
}

// TestBrowserChat: chat sent from one page shows on the other (and on the
// sender's), and a hand raised on one shows on the other.
func TestBrowserChat(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)
	var tabs []context.Context
	for _, name := range []string{"alice", "bob"} {
		tab := openPage(t, browser, s.srv.URL+"/rooms/chatroom?name="+name)
		clickJS(t, tab, "join")
		waitPage(t, tab, name+"'s data channel open", `window.troupe.dc !== null && window.troupe.dc.readyState === "open"`)
		tabs = append(tabs, tab)
	}
	if !evalJS[bool](t, tabs[0], `!document.getElementById("chat").hidden`) {
		t.Fatal("the chat panel is hidden in a room with chat enabled")
	}
	evalJS[bool](t, tabs[0], `(() => {
		document.getElementById("chat-text").value = "hello from the page";
		document.getElementById("chat-form").requestSubmit();
		return true; })()`)
	for _, tab := range tabs {
		waitPage(t, tab, "the chat message", `window.troupe.chat.some((m) => m.text === "hello from the page" && m.name === "alice")`)
	}
	if got := evalJS[string](t, tabs[1], `document.getElementById("chat-log").textContent`); !strings.Contains(got, "alice: hello from the page") {
		t.Fatalf("bob's chat panel shows %q", got)
	}
	clickJS(t, tabs[1], "hand")
	waitPage(t, tabs[0], "bob's raised hand", `window.troupe.hands.length === 1 && window.troupe.hands[0].name === "bob"`)
	waitPage(t, tabs[1], "the button to lower it", `document.getElementById("hand").textContent === "Lower hand"`)
}
