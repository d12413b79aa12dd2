package httpapi

import (
	"fmt"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/firefoxtest"
	"github.com/troupe-media/troupe/internal/poll"
)

// TestFirefoxChromium: Firefox and Chromium join one room through the
// page; each decodes the other's camera and receives its microphone, and
// the chat goes both ways over their data channels.
func TestFirefoxChromium(t *testing.T) {
	firefoxtest.Require(t)
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)
	fox := s.firefoxPage(t, "/rooms/foxchrome?name=fox")
	fox.More = func() string { return fmt.Sprintf("participants %v", s.participants(t, "foxchrome")) }
	fox.Click(t, "join")
	chrome := openPage(t, browser, s.srv.URL+"/rooms/foxchrome?name=chrome")
	clickJS(t, chrome, "join")

	var st pageStats
	poll.Within(pageWait{TB: t, Tab: chrome, More: fox.Describe}, browserDeadline, "Chromium to decode Firefox's video and receive its audio", func() bool {
		st = evalJS[pageStats](t, chrome, `window.troupe.stats()`)
		return st.VideoFramesDecoded > 30 && st.AudioPacketsReceived > 50
	})
	rep := fox.Wait(t, "Firefox to decode Chromium's video and receive its audio", func(r firefoxtest.Report) bool {
		return r.Stats.VideoFramesDecoded > 30 && r.Stats.AudioPacketsReceived > 50
	})
	t.Logf("Chromium: %+v; Firefox receives %+v", st, rep.Inbound)
	if n := len(s.participants(t, "foxchrome")); n != 2 {
		t.Errorf("%d participants, want 2", n)
	}

	fox.SetValue(t, "chat-text", "hello from Firefox")
	fox.Submit(t, "chat-form")
	waitPage(t, chrome, "Firefox's chat message at Chromium", `window.troupe.chat.some((m) => m.text === "hello from Firefox" && m.name === "fox")`)
	evalJS[bool](t, chrome, `(() => {
		document.getElementById("chat-text").value = "hello from Chromium";
		document.getElementById("chat-form").requestSubmit();
		return true; })()`)
	fox.Wait(t, "Chromium's chat message at Firefox", func(r firefoxtest.Report) bool {
		return slices.Contains(r.Chat, firefoxtest.Chat{Name: "chrome", Text: "hello from Chromium"})
	})
}
