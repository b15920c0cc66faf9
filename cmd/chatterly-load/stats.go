package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// ---------- latency ----------

// Latencies collects durations from many goroutines (sharded mutexes).
type Latencies struct {
	shards [64]struct {
		mu sync.Mutex
		d  []time.Duration
	}
}

// Add records d; key spreads callers over shards.
func (l *Latencies) Add(key int, d time.Duration) {
	s := &l.shards[uint(key)%uint(len(l.shards))]
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// All returns every recorded duration, sorted.
func (l *Latencies) All() []time.Duration {
	var out []time.Duration
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out = append(out, s.d...)
		s.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// Summary is a distribution summary.
type Summary struct {
	N                  int
	P50, P95, P99, Max time.Duration
	Mean               time.Duration
}

// percentile returns the nearest-rank percentile p (0..100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.9999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// summarize expects sorted durations.
func summarize(sorted []time.Duration) Summary {
	s := Summary{N: len(sorted)}
	if len(sorted) == 0 {
		return s
	}
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	s.Mean = sum / time.Duration(len(sorted))
	s.P50, s.P95, s.P99 = percentile(sorted, 50), percentile(sorted, 95), percentile(sorted, 99)
	s.Max = sorted[len(sorted)-1]
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("p50=%s p95=%s p99=%s max=%s", ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max))
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}

// ---------- table ----------

// Table prints aligned rows.
type Table struct {
	rows [][]string
}

func (t *Table) Row(cells ...any) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, r)
}

// LatencyRow appends a row for a summary.
func (t *Table) LatencyRow(name string, s Summary) {
	t.Row(name, s.N, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), ms(s.Mean))
}

func (t *Table) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func latencyHeader(t *Table) { t.Row("latency", "n", "p50", "p95", "p99", "max", "mean") }

// ---------- server metrics ----------

// Metrics is one /metrics sample of the series this tool reads.
type Metrics struct {
	RSS, HeapInuse, Goroutines, CableConns float64
	// CPUSeconds is the server process's user and system CPU time.
	CPUSeconds float64
}

var metricNames = map[string]func(*Metrics, float64){
	"process_resident_memory_bytes": func(m *Metrics, v float64) { m.RSS = v },
	"go_memstats_heap_inuse_bytes":  func(m *Metrics, v float64) { m.HeapInuse = v },
	"go_goroutines":                 func(m *Metrics, v float64) { m.Goroutines = v },
	"chatterly_cable_connections":   func(m *Metrics, v float64) { m.CableConns += v },
	"process_cpu_seconds_total":     func(m *Metrics, v float64) { m.CPUSeconds = v },
}

// toolCPU is the CPU time this process has used, user and system. With the
// server's (Metrics.CPUSeconds) it tells how a run's CPU was shared on a
// machine where the tool and the server compete for the same cores.
func toolCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	sec := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return sec(ru.Utime) + sec(ru.Stime)
}

// parseMetrics reads the Prometheus text format; a labelled series is summed.
func parseMetrics(r io.Reader) (Metrics, error) {
	var m Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		set, ok := metricNames[name]
		if !ok {
			continue
		}
		rest := line[len(name):]
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		set(&m, v)
	}
	return m, sc.Err()
}

func (a *API) Metrics(ctx context.Context) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/metrics", nil)
	if err != nil {
		return Metrics{}, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return Metrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return Metrics{}, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

func mib(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB" }

func kib(b float64) string { return strconv.FormatFloat(b/1024, 'f', 1, 64) + " KiB" }

func metricsRow(r *Report, name string, m Metrics) {
	r.Row(name, mib(m.RSS), mib(m.HeapInuse), int(m.Goroutines), int(m.CableConns))
}

func slicesSort(d []time.Duration) { slices.Sort(d) }
