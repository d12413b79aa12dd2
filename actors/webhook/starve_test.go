package webhook

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// deadEndpoint is a listener on 127.0.0.1 that accepts connections, reads
// what comes, and never answers.
type deadEndpoint struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	ended    int // connections the client closed
}

func newDeadEndpoint(t *testing.T) *deadEndpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	de := &deadEndpoint{ln: ln}
	de.wg.Add(1)
	go func() {
		defer de.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			de.mu.Lock()
			de.conns = append(de.conns, c)
			de.accepted++
			de.mu.Unlock()
			de.wg.Add(1)
			go func() {
				defer de.wg.Done()
				io.Copy(io.Discard, c)
				de.mu.Lock()
				de.ended++
				de.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		de.mu.Lock()
		for _, c := range de.conns {
			c.Close()
		}
		de.mu.Unlock()
		de.wg.Wait()
	})
	return de
}

func (de *deadEndpoint) url() string { return "http://" + de.ln.Addr().String() + "/h" }

func (de *deadEndpoint) counts() (accepted, ended int) {
	de.mu.Lock()
	defer de.mu.Unlock()
	return de.accepted, de.ended
}

// arrivals is a healthy endpoint that records when each delivery reached it.
type arrivals struct {
	srv *httptest.Server
	mu  sync.Mutex
	at  map[string]time.Time
	ids []string // in arrival order
}

func newArrivals(t *testing.T) *arrivals {
	a := &arrivals{at: map[string]time.Time{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("Troupe-Delivery")
		a.mu.Lock()
		if _, dup := a.at[id]; !dup {
			a.at[id] = now
			a.ids = append(a.ids, id)
		}
		a.mu.Unlock()
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *arrivals) arrived(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[id]
	return at, ok
}

func (a *arrivals) order() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ids)
}

// TestDeadEndpointsDoNotStarve: 50 endpoints that accept and never answer,
// 4 rooms each, hold requests open with the default limits; a healthy
// endpoint gets each of its events while every one of those requests still
// hangs. Before endpoints were isolated, 8 such endpoints took every slot
// for the whole request timeout.
func TestDeadEndpointsDoNotStarve(t *testing.T) {
	s := openStore(t, t.TempDir())
	const deadN, roomsEach = 50, 4
	dead := make([]*deadEndpoint, deadN)
	for i := range dead {
		dead[i] = newDeadEndpoint(t)
		hook := &recordpb.Webhook{Endpoint: dead[i].url(), Events: []string{"*"}}
		for r := range roomsEach {
			enqueue(t, s, nil, Event{Name: "room-created", RoomID: fmt.Sprintf("dead_%d_%d", i, r)}, hook)
		}
	}
	healthy := newArrivals(t)
	hook := &recordpb.Webhook{Endpoint: healthy.srv.URL + "/h", Events: []string{"*"}}
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true, RequestTimeout: 10 * time.Minute})
	run(t, d)

	probing := d.metrics.inFlight.WithLabelValues("probing")
	poll.Until(t, "a request hanging at every dead endpoint", func() bool {
		for _, de := range dead {
			if accepted, _ := de.counts(); accepted == 0 {
				return false
			}
		}
		return testutil.ToFloat64(probing) == deadN
	})

	var want []string
	var delays []time.Duration
	for i := range 20 {
		sent := time.Now()
		ev := enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "live", Data: map[string]int{"n": i}}, hook)[0]
		want = append(want, ev.Id)
		poll.Until(t, "the healthy endpoint's event", func() bool { _, ok := healthy.arrived(ev.Id); return ok })
		at, _ := healthy.arrived(ev.Id)
		delays = append(delays, at.Sub(sent))
	}
	if got := healthy.order(); !slices.Equal(got, want) {
		t.Fatalf("healthy endpoint got %v, want in order %v", got, want)
	}
	for i, de := range dead {
		if accepted, ended := de.counts(); accepted != 1 || ended != 0 {
			t.Errorf("dead endpoint %d: %d requests, %d ended; want its one request still hanging", i, accepted, ended)
		}
	}
	if got := testutil.ToFloat64(probing); got != deadN {
		t.Errorf("probing requests in flight = %v, want %d", got, deadN)
	}
	slices.Sort(delays)
	t.Logf("healthy deliveries behind %d dead endpoints: median %v, max %v from event to arrival",
		deadN, delays[len(delays)/2].Round(10*time.Microsecond), delays[len(delays)-1].Round(10*time.Microsecond))
}

// TestProbesBounded: with more dead endpoints than probing slots, the
// attempts in flight stay within MaxConcurrent + MaxProbing, the probing
// slots go round so that every dead endpoint is retried, and a new healthy
// endpoint's events get through, in order.
func TestProbesBounded(t *testing.T) {
	s := openStore(t, t.TempDir())
	const deadN, maxAnswering, maxProbing = 12, 4, 3
	dead := make([]*deadEndpoint, deadN)
	for i := range dead {
		dead[i] = newDeadEndpoint(t)
		hook := &recordpb.Webhook{Endpoint: dead[i].url(), Events: []string{"*"}}
		for r := range 2 {
			enqueue(t, s, nil, Event{Name: "room-created", RoomID: fmt.Sprintf("dead_%d_%d", i, r)}, hook)
		}
	}
	healthy := newArrivals(t)
	hook := &recordpb.Webhook{Endpoint: healthy.srv.URL + "/h", Events: []string{"*"}}
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true, MaxConcurrent: maxAnswering, MaxPerEndpoint: 2,
		MaxProbing: maxProbing, StallAfter: 20 * time.Millisecond, RequestTimeout: time.Minute})
	answering, probing := d.metrics.inFlight.WithLabelValues("answering"), d.metrics.inFlight.WithLabelValues("probing")
	run(t, d)

	var want []string
	for i := range 10 {
		want = append(want, enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "live", Data: map[string]int{"n": i}}, hook)[0].Id)
	}
	sawFull := false
	poll.Until(t, "three requests at every dead endpoint, and the healthy endpoint's events", func() bool {
		a, p := testutil.ToFloat64(answering), testutil.ToFloat64(probing)
		if a > maxAnswering || p > maxProbing {
			t.Fatalf("%v answering and %v probing requests in flight", a, p)
		}
		sawFull = sawFull || p == maxProbing
		for _, de := range dead {
			if accepted, _ := de.counts(); accepted < 3 {
				return false
			}
		}
		return len(healthy.order()) == len(want)
	})
	if got := healthy.order(); !slices.Equal(got, want) {
		t.Fatalf("healthy endpoint got %v, want in order %v", got, want)
	}
	if !sawFull {
		t.Error("the probes never filled their pool")
	}
}

// TestAnsweringNeverWaitsForProbes: an endpoint that answers is not held
// up by new endpoints that do not, even when they take every probing slot
// and more wait for one.
func TestAnsweringNeverWaitsForProbes(t *testing.T) {
	s := openStore(t, t.TempDir())
	healthy := newArrivals(t)
	hook := &recordpb.Webhook{Endpoint: healthy.srv.URL + "/h", Events: []string{"*"}}
	const maxProbing = 4
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true, MaxConcurrent: 2, MaxProbing: maxProbing,
		StallAfter: time.Hour, RequestTimeout: time.Hour})
	probing := d.metrics.inFlight.WithLabelValues("probing")
	run(t, d)
	want := []string{enqueue(t, s, d, Event{Name: "room-created", RoomID: "live"}, hook)[0].Id}
	poll.Until(t, "the healthy endpoint's first event", func() bool { return len(healthy.order()) == 1 })

	dead := make([]*deadEndpoint, 20)
	for i := range dead {
		dead[i] = newDeadEndpoint(t)
		enqueue(t, s, d, Event{Name: "room-created", RoomID: fmt.Sprintf("dead_%d", i)},
			&recordpb.Webhook{Endpoint: dead[i].url(), Events: []string{"*"}})
	}
	poll.Until(t, "every probing slot taken", func() bool { return testutil.ToFloat64(probing) == maxProbing })
	for i := range 10 {
		want = append(want, enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "live", Data: map[string]int{"n": i}}, hook)[0].Id)
	}
	poll.Until(t, "the healthy endpoint's events", func() bool { return len(healthy.order()) == len(want) })
	if got := healthy.order(); !slices.Equal(got, want) {
		t.Fatalf("healthy endpoint got %v, want in order %v", got, want)
	}
	reached := 0
	for _, de := range dead {
		accepted, _ := de.counts()
		reached += accepted
	}
	if reached != maxProbing || testutil.ToFloat64(probing) != maxProbing {
		t.Errorf("%d requests reached dead endpoints, %v probing in flight; want %d each", reached, testutil.ToFloat64(probing), maxProbing)
	}
}
