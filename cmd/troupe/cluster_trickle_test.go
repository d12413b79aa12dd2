package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A WHEP session's trickle ICE PATCH reaches the node that owns its room
// through a node that does not, fragment and If-Match with it: the
// owner's session takes the fragment (204), refuses another ICE session's
// ETag (412) and a fragment for a mid its offer has not (400).
func TestClusterForwardsTrickleICE(t *testing.T) {
	_, b, token, pc := clusterViewer(t)
	resp := whipRequest(t, b, token, "POST", "/whep/r1", gatheredOffer(t, pc))
	loc, etag := resp.Header.Get("Location"), resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "/whep/r1/") || etag == "" {
		t.Fatalf("WHEP through node-b: %d, Location %q, ETag %q", resp.StatusCode, loc, etag)
	}
	mid := pc.GetTransceivers()[0].Mid()
	for _, c := range []struct {
		ifMatch, body string
		want          int
		says          string
	}{
		{etag, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:" + mid + "\r\na=candidate:1 1 udp 2122260223 127.0.0.1 61764 typ host\r\na=end-of-candidates\r\n", http.StatusNoContent, ""},
		{`"PA_other"`, "a=end-of-candidates\r\n", http.StatusPreconditionFailed, "precondition_failed"},
		{etag, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:nope\r\n", http.StatusBadRequest, `no media section of mid \"nope\"`},
	} {
		req, err := http.NewRequest(http.MethodPatch, b.url+loc, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
		req.Header.Set("If-Match", c.ifMatch)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.says) {
			t.Fatalf("PATCH %q (If-Match %s) through node-b: %d %s, want %d saying %s", c.body, c.ifMatch, resp.StatusCode, body, c.want, c.says)
		}
	}
	if resp := whipRequest(t, b, token, "DELETE", loc, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s through node-b: %d", loc, resp.StatusCode)
	}
}
