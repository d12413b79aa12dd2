package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/browsertest"
)

// The elements of the call every page must have: the controls, each with
// a name a screen reader says, and every field with its label.
const callElements = `(() => {
	const ids = ["mute-audio", "mute-video", "share", "hand", "view", "side-toggle", "leave", "tiles", "people", "state", "notice"];
	const missing = ids.filter((id) => !document.getElementById(id));
	const unnamed = [...document.querySelectorAll("button")].filter((b) => !b.textContent.trim() && !b.getAttribute("aria-label")).map((b) => b.id);
	const unlabelled = [...document.querySelectorAll("input, select")].filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label")).map((el) => el.id);
	const tiles = [...document.querySelectorAll(".tile")].filter((t) => !t.getAttribute("aria-label")).length;
	return {missing, unnamed, unlabelled, tilesUnlabelled: tiles,
		controlsShown: !document.getElementById("controls").hidden, prejoinShown: !document.getElementById("prejoin").hidden};
})()`

type callCheck struct {
	Missing         []string `json:"missing"`
	Unnamed         []string `json:"unnamed"`
	Unlabelled      []string `json:"unlabelled"`
	TilesUnlabelled int      `json:"tilesUnlabelled"`
	ControlsShown   bool     `json:"controlsShown"`
	PrejoinShown    bool     `json:"prejoinShown"`
}

func checkCallElements(t *testing.T, tab context.Context, who string) {
	t.Helper()
	c := evalJS[callCheck](t, tab, callElements)
	if len(c.Missing)+len(c.Unnamed)+len(c.Unlabelled)+c.TilesUnlabelled > 0 || !c.ControlsShown || c.PrejoinShown {
		t.Errorf("%s's page: %+v", who, c)
	}
}

// tileLabels is what the tiles of a page say, in the order shown.
const tileLabels = `[...document.querySelectorAll("#tiles .tile")]
	.sort((a, b) => (Number(a.style.order) || 0) - (Number(b.style.order) || 0))
	.map((t) => t.querySelector(".label").textContent).join("|")`

// gridColumns is the number of columns of the tiles' grid.
const gridColumns = `getComputedStyle(document.getElementById("tiles")).gridTemplateColumns.split(" ").length`

// TestBrowserRoomLinks: two people join one public room through its link,
// one with a token in the link, one with only a name (the server mints
// their token); each sees both tiles, named; the page has its controls,
// labelled; keys work; a shared screen shows as a tile of its own in the
// speaker view; screenshots at a laptop's and a phone's size. A private
// room's link without a token says so.
func TestBrowserRoomLinks(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	room := s.createRoom(t, `{"id":"demo-day","name":"Demo day","privacy":"public"}`)
	s.createRoom(t, `{"id":"board","name":"Board"}`)
	link := room["url"].(string)
	if link != s.srv.URL+"/rooms/demo-day" {
		t.Fatalf("room url %q", link)
	}
	browser := newBrowser(t)

	// Ada's link carries her token; the page takes it out of the address.
	ada := openPage(t, browser, link+"?token="+s.joinToken(t, "demo-day", "ada", auth.RolePublisher))
	if loc := evalJS[string](t, ada, `location.pathname + location.search`); loc != "/rooms/demo-day" {
		t.Errorf("the address keeps the token: %s", loc)
	}
	if hidden := evalJS[bool](t, ada, `document.getElementById("token-field").hidden && document.getElementById("name-field").hidden`); !hidden {
		t.Error("a link with a token still asks for a token or a name")
	}
	waitPage(t, ada, "ada's preview", `document.getElementById("preview").srcObject !== null`)
	clickJS(t, ada, "join")
	waitPage(t, ada, "ada to join", `window.troupe.state === "joined"`)

	// Ben has the link alone: he gives a name and the server mints his token.
	ben := openPage(t, browser, link)
	waitPage(t, ben, "ben's device choices", `document.getElementById("camera").options.length > 0`)
	browsertest.Screenshot(t, ben, 1280, 800, "prejoin-1280x800")
	browsertest.Screenshot(t, ben, 390, 844, "prejoin-390x844")
	clickJS(t, ben, "join")
	if n := notice(t, ben); !n.Fault || !strings.Contains(n.Text, "name") {
		t.Errorf("Join without a name: %+v", n)
	}
	if err := chromedp.Do(ben, chromedp.SetValue("#name", "Ben")); err != nil {
		t.Fatal(err)
	}
	clickJS(t, ben, "join")
	waitPage(t, ben, "ben to join", `window.troupe.state === "joined"`)

	for _, p := range []struct {
		tab  context.Context
		want string
	}{{ada, "Ben|ada name (you)"}, {ben, "Ben (you)|ada name"}} { // sorted as JavaScript sorts
		waitPage(t, p.tab, "both tiles, named", fmt.Sprintf(`(%s).split("|").sort().join("|") === %q`, tileLabels, p.want))
		waitPage(t, p.tab, "both in the people list", `document.getElementById("people").children.length === 2`)
		checkCallElements(t, p.tab, p.want)
	}
	var benIdentity string
	for _, p := range s.participants(t, "demo-day") {
		if p["name"] == "Ben" {
			benIdentity, _ = p["identity"].(string)
		}
	}
	if !strings.HasPrefix(benIdentity, "guest-") {
		t.Errorf("ben joined as %q, want a guest identity", benIdentity)
	}

	// The fake microphones beep: someone is marked as speaking.
	waitPage(t, ada, "a speaker marked", `window.troupe.spoke > 0`)

	// Keys: m mutes the microphone.
	if err := chromedp.Do(ada, chromedp.KeyEvent("m")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ada, "m to mute the microphone", `document.getElementById("mute-audio").textContent === "Unmute mic"`)
	waitPage(t, ben, "ada's mute on ben's page", `(`+tileLabels+`).includes("ada name (audio muted)")`)

	browsertest.Screenshot(t, ada, 1280, 800, "two-1280x800")
	if n := evalJS[int](t, ada, gridColumns); n != 2 {
		t.Errorf("two tiles at 1280x800 in %d columns, want 2", n)
	}
	browsertest.Screenshot(t, ada, 390, 844, "two-390x844")
	if n := evalJS[int](t, ada, gridColumns); n != 1 {
		t.Errorf("two tiles at 390x844 in %d columns, want 1", n)
	}

	// Ben shares a screen (a canvas stands for it: headless Chromium has
	// no screen to pick): ada sees it as a tile of its own, shown large.
	evalJS[bool](t, ben, `(() => {
		navigator.mediaDevices.getDisplayMedia = async () => {
			const c = document.createElement("canvas");
			c.width = 640; c.height = 360;
			const g = c.getContext("2d");
			setInterval(() => { g.fillStyle = "#" + Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0"); g.fillRect(0, 0, 640, 360); }, 100);
			return c.captureStream(10);
		};
		return true; })()`)
	clickJS(t, ben, "share")
	waitPage(t, ben, "ben's own screen tile", `document.querySelector(".tile.screen") !== null && document.getElementById("share").textContent === "Stop sharing"`)
	waitPage(t, ada, "ben's screen, large, on ada's page",
		`window.troupe.view === "speaker" && window.troupe.featured !== null && window.troupe.featured.endsWith(":screen") &&
		 document.querySelector(".tile.screen.featured .label").textContent === "Ben: screen"`)
	browsertest.Screenshot(t, ada, 1280, 800, "screen-share-1280x800")
	clickJS(t, ben, "share")
	waitPage(t, ada, "ben's screen gone", `document.querySelector(".tile.screen") === null && window.troupe.view === "grid"`)

	// A private room's link without a token: it is answered as a missing
	// room, and the page says what is needed.
	carl := openPage(t, browser, s.srv.URL+"/rooms/board")
	if err := chromedp.Do(carl, chromedp.SetValue("#name", "Carl")); err != nil {
		t.Fatal(err)
	}
	clickJS(t, carl, "join")
	waitPage(t, carl, "the private room's refusal", `window.troupe.refused === "room_not_found"`)
	if n := notice(t, carl); !n.Fault || !strings.Contains(n.Text, "private") || evalJS[string](t, carl, `window.troupe.state`) != "idle" {
		t.Errorf("a private room's link without a token: %+v", n)
	}
}

// TestBrowserFourParticipants: four pages in one room, two with a camera
// and two with a microphone alone: each shows four named tiles in a grid
// that fills the window, two by two on a laptop and one column on a
// phone, with screenshots of both.
func TestBrowserFourParticipants(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"quad","name":"Quad"}`)
	browser := newBrowser(t)
	names := []string{"ann", "bea", "cyd", "dee"}
	tabs := make([]context.Context, len(names))
	for i, name := range names {
		tabs[i] = openPage(t, browser, s.srv.URL+"/rooms/quad?token="+s.joinToken(t, "quad", name, auth.RolePublisher))
		if i >= 2 {
			// Two join with their microphone alone, chosen before joining:
			// their tiles show their initials, and the browser encodes
			// half the video.
			waitPage(t, tabs[i], name+"'s device choices", `document.getElementById("camera").options.length > 1`)
			evalJS[bool](t, tabs[i], `(() => { const c = document.getElementById("camera");
				c.value = "off"; c.dispatchEvent(new Event("change")); return true; })()`)
			waitPage(t, tabs[i], name+"'s preview without a camera",
				`window.troupe.preview !== null && window.troupe.preview.getVideoTracks().length === 0 && window.troupe.preview.getAudioTracks().length === 1`)
		}
		clickJS(t, tabs[i], "join")
		waitPage(t, tabs[i], name+" to join", `window.troupe.state === "joined"`)
	}
	for i, tab := range tabs {
		var want []string
		for j, n := range names {
			if i == j {
				n += " name (you)"
			} else {
				n += " name"
			}
			want = append(want, n)
		}
		waitPage(t, tab, names[i]+"'s four tiles", fmt.Sprintf(`(%s).split("|").sort().join("|") === %q`, tileLabels, strings.Join(want, "|")))
		waitPage(t, tab, names[i]+"'s people list", `document.getElementById("people-count").textContent === "4"`)
		checkCallElements(t, tab, names[i])
	}
	browsertest.Screenshot(t, tabs[0], 1280, 800, "four-1280x800")
	if n := evalJS[int](t, tabs[0], gridColumns); n != 2 {
		t.Errorf("four tiles at 1280x800 in %d columns, want 2", n)
	}
	browsertest.Screenshot(t, tabs[0], 390, 844, "four-390x844")
	if n := evalJS[int](t, tabs[0], gridColumns); n != 1 {
		t.Errorf("four tiles at 390x844 in %d columns, want 1", n)
	}
	// On a phone, people and chat are over the call: closed until asked for.
	if open := evalJS[bool](t, tabs[0], `!document.getElementById("side").classList.contains("closed")`); open {
		t.Error("people and chat cover the call on a phone")
	}
	clickJS(t, tabs[0], "side-toggle")
	browsertest.Screenshot(t, tabs[0], 390, 844, "four-390x844-people")
	if open := evalJS[string](t, tabs[0], `document.getElementById("side-toggle").getAttribute("aria-expanded")`); open != "true" {
		t.Errorf("people toggle: aria-expanded %s", open)
	}
}

// TestBrowserRefusedJoins: a join the room refuses is told plainly: ended,
// full, locked, outside the join window.
func TestBrowserRefusedJoins(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"over","name":"Over"}`)
	mustStatus(t, s.do(t, "POST", "/api/v1/rooms/over/end", ""), 200)
	s.createRoom(t, `{"id":"small","name":"Small","config":{"max_participants":1}}`)
	s.createRoom(t, `{"id":"shut","name":"Shut","config":{"locked":true}}`)
	s.createRoom(t, `{"id":"later","name":"Later","config":{"join_from":"2999-01-01T00:00:00Z"}}`)
	first := s.dialWS(t, "first", s.joinToken(t, "small", "first", auth.RolePublisher))
	first.waitMsg("joined", nil)
	browser := newBrowser(t)
	for _, tc := range []struct{ room, code, says string }{
		{"over", "room_ended", "has ended"},
		{"small", "room_full", "is full"},
		{"shut", "room_locked", "is locked"},
		{"later", "outside_join_window", "not open for joining now"},
	} {
		tab := openPage(t, browser, s.srv.URL+"/rooms/"+tc.room+"?token="+s.joinToken(t, tc.room, "late", auth.RolePublisher))
		clickJS(t, tab, "join")
		waitPage(t, tab, tc.room+"'s refusal", fmt.Sprintf(`window.troupe.refused === %q && window.troupe.state === "closed"`, tc.code))
		if n := notice(t, tab); !n.Fault || !strings.Contains(n.Text, tc.says) {
			t.Errorf("%s: notice %+v, want it to say %q", tc.room, n, tc.says)
		}
		if shown := evalJS[bool](t, tab, `!document.getElementById("prejoin").hidden`); !shown {
			t.Errorf("%s: the pre-join screen is gone after the refusal", tc.room)
		}
	}
}
