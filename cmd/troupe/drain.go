package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// drainCheck is how often a draining node looks whether its rooms have
// emptied, so that it stops early.
const drainCheck = 100 * time.Millisecond

// markDrainingTimeout bounds the write of the node record that says the
// node drains.
const markDrainingTimeout = 5 * time.Second

// Drain makes the node stop taking work while what runs goes on: /readyz
// answers 503 at once (a load balancer stops sending traffic), new rooms
// and joins are refused with 503 draining, and in a cluster placement
// sends new rooms to the other nodes. It then waits, up to timeout, for
// the participants of this node's rooms to leave; ctx ending (a second
// signal) cuts the wait short. It returns the participants still here;
// Shutdown then tells them to reconnect (close code 1001) and stops.
func (s *Server) Drain(ctx context.Context, timeout time.Duration) int {
	s.beginDrain(ctx)
	left := s.rooms.LiveParticipants()
	if timeout <= 0 || left == 0 {
		return left
	}
	s.log.Info("draining: no new rooms or joins; sessions go on", "timeout", timeout, "participants", left)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	check := time.NewTicker(drainCheck)
	defer check.Stop()
	for left > 0 {
		select {
		case <-deadline.C:
			s.log.Info("draining: timeout reached", "participants", left)
			return left
		case <-ctx.Done():
			s.log.Info("draining: cut short", "participants", left)
			return left
		case <-check.C:
			left = s.rooms.LiveParticipants()
		}
	}
	s.log.Info("draining: rooms empty")
	return 0
}

// beginDrain turns the node to draining: /readyz, the rooms and, in a
// cluster, the node's record. Doing it again changes nothing.
func (s *Server) beginDrain(ctx context.Context) {
	if s.draining.Swap(true) && s.rooms.Draining() {
		return
	}
	s.rooms.Drain()
	if s.cluster != nil {
		s.cluster.stopTakingOver()
		s.cluster.markDraining(ctx)
	}
}

// drainOnSignal drains the server after the first SIGINT or SIGTERM; a
// second one cuts the drain short, so that the stop goes on at once. A
// drain asked through the API passes ctx, whose end (the first signal)
// cuts it short.
func (s *Server) drainOnSignal(ctx context.Context, timeout time.Duration) {
	if timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		// After the drain, a further signal gets Go's default handling:
		// the process ends at once.
		defer stop()
	}
	s.Drain(ctx, timeout)
}

// markDraining publishes in the node's record that it drains, so that the
// other nodes place no new room here. A failed write is logged: the
// node's own rooms refuse joins whatever the record says.
func (c *cluster) markDraining(ctx context.Context) {
	c.draining.Store(true)
	// Bounded: an etcd out of reach must not hold the stop up.
	ctx, cancel := context.WithTimeout(ctx, markDrainingTimeout)
	defer cancel()
	if err := c.putRecord(ctx); err != nil {
		c.log.Warn("publish that the node drains", "node", c.node.ID, "err", err)
	}
}

// requestDrain asks run to drain the node and stop, as SIGTERM does.
func (s *Server) requestDrain() {
	s.askDrain.Do(func() {
		s.log.Info("drain requested through the API")
		// Not ready from the answer on, as after SIGTERM.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		defer cancel()
		s.beginDrain(ctx)
		close(s.drainAsked)
	})
}

// drainingMetric is 1 from the start of a drain (or of the stop): the node
// is on its way out and takes no new rooms or joins.
func (s *Server) drainingMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "troupe_node_draining",
		Help: "1 while this node drains or stops: it takes no new rooms or joins.",
	}, func() float64 {
		if s.draining.Load() {
			return 1
		}
		return 0
	})
}
