// Package firefoxtest runs the web page's tests in Firefox: a headless
// Firefox ESR with a fake camera and microphone, started as a child
// process of the test. Firefox speaks no Chrome DevTools protocol, so
// nothing drives it from outside: a Front stands before the server under
// test, serves its pages with a small script of its own added (same
// origin, so the page's Content-Security-Policy lets it run and post), and
// that script reports what the page shows (window.troupe: its state, its
// inbound and outbound RTP, its SDP) to the Front every few hundred
// milliseconds, taking back the clicks the test asks for.
//
// The tests run only with TROUPE_FIREFOX_TESTS=1 (as CI sets), where
// Firefox missing is a failure. Like internal/browsertest it knows nothing
// of Troupe's packages (only poll and syncbuf); only tests import it.
package firefoxtest

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/syncbuf"
)

// Deadline bounds each wait of a Firefox test: generous, since a loaded
// machine may take many times the usual seconds to start Firefox or
// negotiate. It bounds a failure; nothing waits for it to pass.
const Deadline = 90 * time.Second

// EnvVar is the variable that turns the Firefox tests on.
const EnvVar = "TROUPE_FIREFOX_TESTS"

// binPath finds a Firefox binary; "" if there is none.
func binPath() string {
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Require skips t unless TROUPE_FIREFOX_TESTS=1, and fails it when the
// variable is set but no Firefox is installed.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvVar) != "1" {
		t.Skip("Firefox test: set " + EnvVar + "=1 to run it (needs firefox-esr)")
	}
	if binPath() == "" {
		t.Fatal(EnvVar + "=1 but no firefox-esr (or firefox) binary found")
	}
}

// prefs are the profile's preferences (user.js): a fake camera and
// microphone given without asking, ICE on loopback with plain addresses
// (no mDNS names, which a server on loopback cannot resolve), media that
// plays without a gesture, and none of the first-run pages, telemetry,
// updates, plugin downloads or remote settings that would reach out of
// the machine or add work to a loaded one.
var prefs = map[string]any{
	"media.navigator.streams.fake":                      true,
	"media.navigator.permission.disabled":               true,
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	"media.peerconnection.ice.link_local":               false,
	"media.autoplay.default":                            0,
	"media.autoplay.blocking_policy":                    0,
	"media.gmp-manager.updateEnabled":                   false,
	"media.gmp-gmpopenh264.autoupdate":                  false,
	"browser.shell.checkDefaultBrowser":                 false,
	"browser.startup.homepage_override.mstone":          "ignore",
	"browser.startup.page":                              0,
	"browser.aboutwelcome.enabled":                      false,
	"browser.newtabpage.enabled":                        false,
	"browser.tabs.warnOnClose":                          false,
	"browser.sessionstore.resume_from_crash":            false,
	"browser.safebrowsing.malware.enabled":              false,
	"browser.safebrowsing.phishing.enabled":             false,
	"browser.safebrowsing.downloads.enabled":            false,
	"browser.discovery.enabled":                         false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"datareporting.healthreport.uploadEnabled":          false,
	"toolkit.telemetry.enabled":                         false,
	"toolkit.telemetry.unified":                         false,
	"toolkit.telemetry.reportingpolicy.firstRun":        false,
	"app.update.auto":                                   false,
	"app.normandy.enabled":                              false,
	"extensions.update.enabled":                         false,
	"extensions.getAddons.cache.enabled":                false,
	"network.captive-portal-service.enabled":            false,
	"network.connectivity-service.enabled":              false,
	"network.dns.disablePrefetch":                       true,
	"network.prefetch-next":                             false,
	"services.settings.server":                          "http://127.0.0.1:9/",
	"dom.disable_beforeunload":                          true,
}

// userJS is prefs as a user.js file.
func userJS() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(prefs)) {
		switch v := prefs[k].(type) {
		case string:
			fmt.Fprintf(&b, "user_pref(%q, %q);\n", k, v)
		default:
			fmt.Fprintf(&b, "user_pref(%q, %v);\n", k, v)
		}
	}
	return b.String()
}

// Process is a running Firefox.
type Process struct {
	cmd    *exec.Cmd
	output *syncbuf.Buffer // what Firefox wrote on stdout and stderr
	done   chan struct{}   // closed once Firefox exited
	err    error           // of Firefox's exit, once done is closed
}

// Start starts a headless Firefox with a profile of its own in a temporary
// directory, opening url. Firefox and every process it started are killed
// and waited for when the test ends (before the cleanups registered
// earlier, the servers, run); if the test failed, what Firefox wrote is
// logged. Call Require first.
func Start(t testing.TB, url string) *Process {
	t.Helper()
	bin := binPath()
	if bin == "" {
		t.Fatal("no firefox-esr (or firefox) binary found")
	}
	profile := t.TempDir()
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Process{output: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--headless", "--no-remote", "--profile", profile, url)
	p.cmd.Env = append(os.Environ(),
		"HOME="+t.TempDir(), // nothing written in the user's home
		"MOZ_HEADLESS=1",
		// The crash reporter's helper would run in a process group of its
		// own, out of the kill's reach.
		"MOZ_CRASHREPORTER_DISABLE=1",
	)
	// A group of its own: the clean-up kills Firefox's content processes
	// with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("firefox's output:\n%s", p.Output())
		}
	})
	return p
}

// Exited reports whether Firefox has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// outputTail bounds what Output returns: the end of what Firefox wrote
// is what explains a failure.
const outputTail = 16 << 10

// Output is the end of what Firefox wrote so far on stdout and stderr.
func (p *Process) Output() string {
	s := p.output.String()
	if len(s) > outputTail {
		s = "..." + s[len(s)-outputTail:]
	}
	return s
}
