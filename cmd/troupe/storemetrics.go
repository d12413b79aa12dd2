package main

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// storeRooms is the store's collector with troupe_store_rooms counted as
// the API lists rooms: a room held failed (it kept failing, see the
// actors' supervision) is stored active but listed failed, so it is
// reported as "failed", out of "active". The count of failed rooms is this
// node's: the hold lives in its memory.
type storeRooms struct {
	store prometheus.Collector
	rooms *prometheus.Desc           // the store's troupe_store_rooms
	held  atomic.Pointer[func() int] // the rooms held failed; unset until the rooms run
}

func newStoreRooms(store prometheus.Collector) *storeRooms {
	c := &storeRooms{store: store}
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		store.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		if strings.Contains(d.String(), `fqName: "troupe_store_rooms"`) {
			c.rooms = d
		}
	}
	return c
}

// countFailed sets what counts the rooms held failed.
func (c *storeRooms) countFailed(failed func() int) { c.held.Store(&failed) }

func (c *storeRooms) Describe(ch chan<- *prometheus.Desc) { c.store.Describe(ch) }

func (c *storeRooms) Collect(ch chan<- prometheus.Metric) {
	failed := 0
	if f := c.held.Load(); f != nil {
		failed = (*f)()
	}
	in := make(chan prometheus.Metric, 16)
	go func() {
		c.store.Collect(in)
		close(in)
	}()
	var reported bool
	for m := range in {
		if c.rooms == nil || m.Desc() != c.rooms {
			ch <- m
			continue
		}
		reported = true
		var pb dto.Metric
		if err := m.Write(&pb); err != nil || statusOf(&pb) != "active" {
			ch <- m
			continue
		}
		active := max(0, pb.GetGauge().GetValue()-float64(failed))
		ch <- prometheus.MustNewConstMetric(c.rooms, prometheus.GaugeValue, active, "active")
	}
	if reported { // nothing when the store is closed
		ch <- prometheus.MustNewConstMetric(c.rooms, prometheus.GaugeValue, float64(failed), "failed")
	}
}

func statusOf(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "status" {
			return l.GetValue()
		}
	}
	return ""
}
