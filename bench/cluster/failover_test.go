package cluster

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// failoverRuns is how many times TestFailover kills a room's owner: a few
// in CI, 20 for the figure in bench/RESULTS.md.
var failoverRuns = flag.Int("failover-runs", 3, "rounds of TestFailover")

// holdTargets makes a missed timing target a failure. Without it, as in
// CI on a shared machine, a miss is logged and only a time several times
// the target fails: the targets are figures (bench/RESULTS.md), measured
// on a quiet machine with -hold-targets.
var holdTargets = flag.Bool("hold-targets", false, "fail the rig's timed tests on a missed target, not only past several times it")

// missedBound is how many times its target a time may take before the
// test fails without -hold-targets.
const missedBound = 4

// checkTarget reports a time against its target: see holdTargets.
func checkTarget(t *testing.T, what string, took, target time.Duration) {
	t.Helper()
	switch {
	case took <= target:
	case *holdTargets || took > missedBound*target:
		t.Errorf("%s took %v, more than its target %v (-hold-targets=%v; bound without it %dx)", what, took, target, *holdTargets, missedBound)
	default:
		t.Logf("%s took %v, more than its target %v: a loaded machine? (a failure with -hold-targets)", what, took, target)
	}
}

// The targets of a failover, from the owner's SIGKILL.
const (
	// answerSlack is how long after the lease TTL the room may take to
	// answer on another node.
	answerSlack = time.Second
	// mediaTarget bounds the p95 of the time until a member who rejoins
	// receives media again.
	mediaTarget = 10 * time.Second
)

// SIGKILL of a room's owner: the room answers on another node within the
// lease TTL and a second, and members who rejoin (through any live node,
// with a new peer connection) receive media again within 10 s, p95 over
// the rounds. Each round kills the owner of a fresh room and starts a new
// node in its place.
func TestFailover(t *testing.T) {
	c := startCluster(t, Config{})
	var answers, media []time.Duration
	for round := range *failoverRuns {
		a, m := failoverRound(t, c, fmt.Sprintf("fo%d", round))
		answers, media = append(answers, a), append(media, m)
		t.Logf("round %d: the room answered %v and media came again %v after the owner's SIGKILL", round, a.Round(time.Millisecond), m.Round(time.Millisecond))
		c.AddNode()
	}
	t.Logf("over %d rounds: room answers p50 %v max %v; media again p50 %v p95 %v max %v (lease TTL %v)",
		len(answers), percentile(answers, 50), percentile(answers, 100),
		percentile(media, 50), percentile(media, 95), percentile(media, 100), c.LeaseTTL())
	for i, a := range answers {
		checkTarget(t, fmt.Sprintf("round %d: the room's answer on another node after the kill", i), a, c.LeaseTTL()+answerSlack)
	}
	checkTarget(t, fmt.Sprintf("media again (p95 of %d rounds)", len(media)), percentile(media, 95), mediaTarget)
}

// failoverRound makes room with a publisher and a subscriber, each joined
// through a node that is not the owner, kills the owner, and returns how
// long after the kill the room answered on another node and the
// subscriber, rejoined, received media again.
func failoverRound(t *testing.T, c *Cluster, room string) (answered, mediaAgain time.Duration) {
	ctx := t.Context()
	owner := createRoom(t, c, c.Live()[0], room)
	others := nonOwners(c, owner)
	pub := join(t, c, others[0], room, "pub", "publisher")
	if err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	sub := join(t, c, others[1], room, "sub", "subscriber")
	waitPackets(t, "the subscriber's video", waitReceiver(t, sub, "video"), 10)

	killed := time.Now()
	owner.Kill()
	// What a client sees: its socket ends, through whichever node it came.
	for _, m := range []*Member{pub, sub} {
		poll.Closed(t, m.ParticipantID()+"'s socket to end after the owner died", m.Done())
	}
	// Until then, a live node answers 503 room_unavailable: retry.
	var wrong []string
	poll.Until(t, room+" to answer on a live node", func() bool {
		n := c.Live()[rand.IntN(len(c.Live()))]
		resp, err := c.Do(ctx, n, http.MethodGet, "/api/v1/rooms/"+room+"/participants", nil)
		switch {
		case err != nil:
			wrong = append(wrong, err.Error())
		case resp.Status == http.StatusOK:
			return true
		case resp.Status != http.StatusServiceUnavailable || !bytes.Contains(resp.Body, []byte(`"room_unavailable"`)):
			wrong = append(wrong, fmt.Sprintf("%s: %d %s", n.ID, resp.Status, bytes.TrimSpace(resp.Body)))
		}
		return false
	})
	answered = time.Since(killed)
	if len(wrong) > 0 {
		t.Errorf("while %s's owner was dead, live nodes answered other than 503 room_unavailable: %q", room, wrong)
	}

	// Both rejoin as a client would, with jittered backoff, through live
	// nodes other than the new owner when there is one.
	pub2 := rejoin(t, c, room, "pub", "publisher")
	if err := pub2.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	sub2 := rejoin(t, c, room, "sub", "subscriber")
	var first time.Time
	poll.Until(t, "the rejoined subscriber's first packet", func() bool {
		var ok bool
		first, ok = sub2.FirstPacket()
		return ok
	})
	// The old members are gone from the room; only the new ones remain.
	newOwner, err := c.Owner(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the lost members to leave "+room, func() bool {
		return slices.Equal(identities(t, c, newOwner, room), []string{"pub", "sub"}) && participantCount(t, c, newOwner, room) == 2
	})
	return answered, first.Sub(killed)
}

// rejoin joins room through a random live node, again and again with a
// jittered backoff until it is let in, as a client that lost its node does.
func rejoin(t *testing.T, c *Cluster, room, identity, role string) *Member {
	t.Helper()
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(poll.Timeout)
	for {
		live := c.Live()
		n := live[rand.IntN(len(live))]
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		m, err := c.Join(ctx, n, room, identity, role)
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = m.Close() })
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s could not rejoin %s: %v", identity, room, err)
		}
		// The pause of a client's backoff, between two attempts.
		time.Sleep(backoff/2 + rand.N(backoff))
		backoff = min(2*backoff, time.Second)
	}
}

// participantCount is how many members room has as node n answers.
func participantCount(t *testing.T, c *Cluster, n *Node, room string) int {
	t.Helper()
	var list []any
	if err := c.Expect(n, http.StatusOK, "GET", "/api/v1/rooms/"+room+"/participants", nil).JSON(&list); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// percentile is the p-th percentile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// Takeover: when an owner dies, a watcher on another node claims its
// rooms without waiting for a request, closes the members the dead node
// left open with the reason node-lost, and carries the session on for a
// member who joins again.
func TestTakeoverClosesLostMembers(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	owner := createRoom(t, c, c.Live()[0], "lost")
	join(t, c, owner, "lost", "alice", "publisher")
	join(t, c, owner, "lost", "bob", "subscriber")
	var room struct {
		Session string `json:"active_session_id"`
	}
	if err := c.Expect(owner, http.StatusOK, "GET", "/api/v1/rooms/lost", nil).JSON(&room); err != nil || room.Session == "" {
		t.Fatalf("no active session: %v", err)
	}
	owner.Kill()

	// No request names the room: only a watcher can bring it back.
	poll.Until(t, "a live node to run the dead node's room", func() bool {
		var sum float64
		for _, n := range c.Live() {
			v, err := c.Metric(ctx, n, "troupe_room_actors")
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
		return sum == 1
	})
	poll.Until(t, "the lost members to be closed with reason node-lost", func() bool {
		var hist struct {
			Participants []struct {
				Identity    string  `json:"identity"`
				LeftAt      *string `json:"left_at"`
				LeaveReason string  `json:"leave_reason"`
			} `json:"participants"`
		}
		resp := c.Expect(c.Live()[0], http.StatusOK, "GET", "/api/v1/sessions/"+room.Session+"/participants", nil)
		if err := resp.JSON(&hist); err != nil {
			t.Fatal(err)
		}
		closed := 0
		for _, p := range hist.Participants {
			if p.LeftAt != nil && p.LeaveReason == "node-lost" {
				closed++
			}
		}
		return len(hist.Participants) == 2 && closed == 2
	})
	// A member who joins again carries the session on.
	join(t, c, c.Live()[0], "lost", "alice", "publisher")
	var after struct {
		Session string `json:"active_session_id"`
	}
	if err := c.Expect(c.Live()[1], http.StatusOK, "GET", "/api/v1/rooms/lost", nil).JSON(&after); err != nil {
		t.Fatal(err)
	}
	if after.Session != room.Session {
		t.Errorf("after the takeover the room's session is %q, want %q carried on", after.Session, room.Session)
	}
}
