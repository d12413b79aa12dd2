package persistence

import (
	"context"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Collector returns the store's Prometheus metrics: Pebble's own figures
// (troupe_pebble_*) and the room counts (troupe_store_rooms), read at each
// scrape. After Close it reports nothing.
func (s *Store) Collector() prometheus.Collector {
	return &collector{s: s}
}

type collector struct{ s *Store }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descDiskUsage   = desc("troupe_pebble_disk_usage_bytes", "Disk space used by the database, including obsolete files not yet deleted.")
	descWALSize     = desc("troupe_pebble_wal_size_bytes", "Size of the live data in the write-ahead log.")
	descWALWritten  = desc("troupe_pebble_wal_written_bytes_total", "Bytes written to the write-ahead log since open.")
	descMemTable    = desc("troupe_pebble_memtable_size_bytes", "Bytes allocated by memtables.")
	descCompactions = desc("troupe_pebble_compactions_total", "Compactions since open.")
	descFlushes     = desc("troupe_pebble_flushes_total", "Memtable flushes since open.")
	descReadAmp     = desc("troupe_pebble_read_amplification", "Number of sorted runs a read may have to consult.")
	descCacheHits   = desc("troupe_pebble_block_cache_hits_total", "Block cache hits since open.")
	descCacheMisses = desc("troupe_pebble_block_cache_misses_total", "Block cache misses since open.")
	descRooms       = desc("troupe_store_rooms", "Rooms stored, by status.", "status")
	collectorDescs  = []*prometheus.Desc{descDiskUsage, descWALSize, descWALWritten, descMemTable, descCompactions, descFlushes, descReadAmp, descCacheHits, descCacheMisses, descRooms}
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.enter(context.Background()) != nil {
		return // closed: nothing to read
	}
	m := s.db.Metrics()
	s.leave()

	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descDiskUsage, float64(m.DiskSpaceUsage()))
	gauge(descWALSize, float64(m.WAL.Size))
	counter(descWALWritten, float64(m.WAL.BytesWritten))
	gauge(descMemTable, float64(m.MemTable.Size))
	counter(descCompactions, float64(m.Compact.Count))
	counter(descFlushes, float64(m.Flush.Count))
	gauge(descReadAmp, float64(m.ReadAmp()))
	counter(descCacheHits, float64(m.BlockCache.Hits))
	counter(descCacheMisses, float64(m.BlockCache.Misses))

	counts := s.counts.snapshot()
	// Report the known statuses even at zero, so that dashboards see a
	// series rather than a gap.
	for _, st := range []recordpb.RoomStatus{recordpb.RoomStatus_ROOM_STATUS_ACTIVE, recordpb.RoomStatus_ROOM_STATUS_ENDED} {
		if _, ok := counts[st]; !ok {
			counts[st] = 0
		}
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(n), statusLabel(st))
	}
}

// statusLabel is the status in the API's words: "active", "ended".
func statusLabel(st recordpb.RoomStatus) string {
	name, ok := recordpb.RoomStatus_name[int32(st)]
	if !ok {
		return strconv.Itoa(int(st)) // a status from a newer build
	}
	return strings.ToLower(strings.TrimPrefix(name, "ROOM_STATUS_"))
}
