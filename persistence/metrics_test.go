package persistence

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/persistence/internal/recordtest"
)

func TestCollector(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, recordtest.Room("a", active, 0), recordtest.Room("b", active, 1), recordtest.Room("c", ended, 2))
	if _, err := s.GetRoom(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatalf("Register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	rooms := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			if mf.GetName() == "troupe_store_rooms" {
				rooms[m.GetLabel()[0].GetValue()] = v
				continue
			}
			got[mf.GetName()] = v
		}
	}
	for _, name := range []string{
		"troupe_pebble_disk_usage_bytes", "troupe_pebble_wal_size_bytes", "troupe_pebble_wal_written_bytes_total",
		"troupe_pebble_memtable_size_bytes", "troupe_pebble_compactions_total", "troupe_pebble_flushes_total",
		"troupe_pebble_read_amplification", "troupe_pebble_block_cache_hits_total", "troupe_pebble_block_cache_misses_total",
	} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	for _, name := range []string{"troupe_pebble_disk_usage_bytes", "troupe_pebble_wal_written_bytes_total", "troupe_pebble_memtable_size_bytes"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v after writes, want > 0", name, got[name])
		}
	}
	if rooms["active"] != 2 || rooms["ended"] != 1 || len(rooms) != 2 {
		t.Errorf("troupe_store_rooms = %v, want active 2, ended 1", rooms)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	families, err = reg.Gather()
	if err != nil || len(families) != 0 {
		t.Fatalf("Gather after Close = %d families, %v; want none", len(families), err)
	}
}
