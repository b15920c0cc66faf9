//go:build pprof

// Profiling builds (go build -tags pprof) serve net/http/pprof on
// CHATTERLY_PPROF_ADDR (default 127.0.0.1:6060), apart from the public
// listener. Release builds leave it out entirely: docs/benchmarks.md uses it.
package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // a loopback-only listener of a profiling build
	"os"
	"time"
)

func init() {
	addr := os.Getenv("CHATTERLY_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() {
		srv := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		slog.Warn("profiling build: pprof listening", "addr", addr)
		if err := srv.ListenAndServe(); err != nil {
			slog.Error("pprof listener", "err", err)
		}
	}()
}
