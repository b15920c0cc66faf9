package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolMetrics reports pgxpool's statistics of each pool when scraped.
type poolMetrics struct {
	pools []namedPool
	descs []poolMetric
}

type namedPool struct {
	name string
	pool *pgxpool.Pool
}

type poolMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*pgxpool.Stat) float64
}

// Collector returns a Prometheus collector of the pools' statistics,
// labelled pool="primary", "replica" and "direct" (the last two only when
// they are pools of their own). Acquires that waited, and how long they
// waited, tell a pool too small (or a pooler behind it saturated) from a
// slow database.
func (db *DB) Collector() prometheus.Collector {
	pools := []namedPool{{"primary", db.primary}}
	if db.replica != db.primary {
		pools = append(pools, namedPool{"replica", db.replica})
	}
	if db.direct != db.primary {
		pools = append(pools, namedPool{"direct", db.direct})
	}
	metric := func(name, help string, kind prometheus.ValueType, value func(*pgxpool.Stat) float64) poolMetric {
		return poolMetric{prometheus.NewDesc("chatterly_db_pool_"+name, help, []string{"pool"}, nil), kind, value}
	}
	return &poolMetrics{pools: pools, descs: []poolMetric{
		metric("acquired_connections", "Connections in use.", prometheus.GaugeValue,
			func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }),
		metric("idle_connections", "Connections open and idle.", prometheus.GaugeValue,
			func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }),
		metric("connections", "Connections open or being opened.", prometheus.GaugeValue,
			func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }),
		metric("max_connections", "The pool's size (pool_max_conns).", prometheus.GaugeValue,
			func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }),
		metric("acquires_total", "Connections handed out.", prometheus.CounterValue,
			func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }),
		metric("empty_acquires_total", "Connections handed out after a wait, none being idle.", prometheus.CounterValue,
			func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }),
		metric("empty_acquire_wait_seconds_total", "Time spent in those waits.", prometheus.CounterValue,
			func(s *pgxpool.Stat) float64 { return s.EmptyAcquireWaitTime().Seconds() }),
		metric("canceled_acquires_total", "Waits for a connection that ended with the request's context.", prometheus.CounterValue,
			func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }),
		metric("new_connections_total", "Connections opened.", prometheus.CounterValue,
			func(s *pgxpool.Stat) float64 { return float64(s.NewConnsCount()) }),
	}}
}

func (m *poolMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d.desc
	}
}

func (m *poolMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, p := range m.pools {
		s := p.pool.Stat()
		for _, d := range m.descs {
			ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(s), p.name)
		}
	}
}
