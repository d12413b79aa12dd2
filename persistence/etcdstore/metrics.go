package etcdstore

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Collector returns the Store's Prometheus metrics: troupe_store_rooms, by
// status, as the Pebble store reports it, counted by etcd at each scrape.
// After Close it collects nothing.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

var descRooms = prometheus.NewDesc("troupe_store_rooms", "Rooms stored, by status.", []string{"status"}, nil)

// scrapeTimeout bounds a scrape's reads, so that an unreachable etcd makes
// a scrape miss the figure rather than hang.
const scrapeTimeout = 5 * time.Second

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- descRooms }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if s.enter(ctx) != nil {
		return
	}
	defer s.leave()
	var statuses []recordpb.RoomStatus
	var ops []clientv3.Op
	for n := range recordpb.RoomStatus_name {
		if st := recordpb.RoomStatus(n); st != recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED {
			statuses = append(statuses, st)
			ops = append(ops, clientv3.OpGet(s.k.roomList(st), clientv3.WithPrefix(), clientv3.WithCountOnly()))
		}
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		s.log.Warn("counting rooms for metrics", "err", err)
		return
	}
	for i, st := range statuses {
		label := strings.ToLower(strings.TrimPrefix(st.String(), "ROOM_STATUS_"))
		n := resp.Responses[i].GetResponseRange().Count
		ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(n), label)
	}
}
