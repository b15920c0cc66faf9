package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"
)

// Report is the outcome of a run: a one-line summary and a table for
// people, and the same figures in Result for scripts (-json).
type Report struct {
	Table
	Result Result
}

// Result is what -json prints. Every section is present (an empty object
// when the scenario has nothing for it), so that a script can index it.
type Result struct {
	Scenario string `json:"scenario"`
	Summary  string `json:"summary"`
	// ElapsedS is how long the measured part took, in seconds; absent
	// where only the state after it is measured (idle).
	ElapsedS float64            `json:"elapsed_s,omitempty"`
	Counts   map[string]int64   `json:"counts"`
	Rates    map[string]float64 `json:"rates_per_s"`
	Latency  map[string]Latency `json:"latency_ms"`
	// CPUPerMessage is CPU time per accepted message in ms, by process.
	CPUPerMessage map[string]float64 `json:"cpu_ms_per_message"`
	// Server holds figures read from the server's /metrics: bytes,
	// goroutines, connections, and their differences.
	Server  map[string]float64 `json:"server"`
	Samples []Sample           `json:"samples,omitempty"`
}

// Latency is a Summary in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Sample is one /metrics sample of a soak.
type Sample struct {
	Name       string  `json:"name"`
	ElapsedS   float64 `json:"elapsed_s"`
	RSS        float64 `json:"rss_bytes"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
	CableConns float64 `json:"cable_conns"`
	Accepted   int64   `json:"accepted"`
	Delivered  int64   `json:"delivered"`
}

func newReport(scenario string) *Report {
	return &Report{Result: Result{
		Scenario: scenario, Counts: map[string]int64{}, Rates: map[string]float64{},
		Latency: map[string]Latency{}, CPUPerMessage: map[string]float64{}, Server: map[string]float64{},
	}}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Latency adds a table row named label and the same figures under key.
func (r *Report) Latency(label, key string, s Summary) {
	r.LatencyRow(label, s)
	r.Result.Latency[key] = Latency{N: s.N, P50: msf(s.P50), P95: msf(s.P95), P99: msf(s.P99), Max: msf(s.Max), Mean: msf(s.Mean)}
}

// Print writes the summary line and the table, or the Result as one JSON
// object on one line.
func (r *Report) Print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r.Result)
	}
	if _, err := fmt.Fprintln(w, r.Result.Summary); err != nil {
		return err
	}
	r.Table.Print(w)
	return nil
}

// report prints r on stdout as cm asks.
func report(cm common, r *Report, summary string) {
	r.Result.Summary = summary
	if err := r.Print(os.Stdout, cm.json); err != nil {
		stderrf("writing the result: %v\n", err)
	}
}

// progress prints "<name>: <elapsed>: <status()>" on stderr every interval
// until stop (which may be called again) is called, so that a long run
// shows it is alive and how it goes. An interval of 0 prints nothing.
func progress(every time.Duration, name string, status func() string) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	began := time.Now()
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				stderrf("%s: %s: %s\n", name, time.Since(began).Round(time.Second), status())
			}
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}

// stderrf is how the tool talks on stderr: errors it prints may carry a
// connection string or a URL (a parse error quotes it whole).
func stderrf(format string, args ...any) {
	fmt.Fprint(os.Stderr, redact(fmt.Sprintf(format, args...)))
}

var (
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*):[^\s@]*@`)
	kvPassword  = regexp.MustCompile(`(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	urlToken    = regexp.MustCompile(`([?&]token=)[A-Za-z0-9._~%+-]+`)
)

// redact masks the passwords of URLs and of key=value connection strings,
// and the tokens in cable URLs, in s.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}:xxxxx@")
	s = kvPassword.ReplaceAllString(s, "${1}xxxxx")
	return urlToken.ReplaceAllString(s, "${1}xxxxx")
}
