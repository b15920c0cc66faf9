// Command chatterly is the Chatterly chat server.
//
//	chatterly [serve]           run the server (the default)
//	chatterly migrate up        apply database migrations
//	chatterly migrate status    show which migrations are applied
//	chatterly healthcheck       probe the local server's /up (distroless images have no curl)
//
// Configuration comes from the environment; see configs/chatterly.env.example.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/chatterly/chatterly/adapters/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage:
  chatterly [serve]          run the server (default)
  chatterly migrate up       apply database migrations (needs DATABASE_URL)
  chatterly migrate status   show applied migrations (needs DATABASE_URL)
  chatterly healthcheck      exit 0 if the local server answers /up (for containers)
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "healthcheck" {
		return healthcheck(ctx, getenv, stderr)
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(stdout, cfg.LogLevel)
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "serve"):
		if err := serve(ctx, cfg, log); err != nil {
			log.Error("server stopped", "err", err)
			return 1
		}
		return 0
	case len(args) == 2 && args[0] == "migrate" && (args[1] == "up" || args[1] == "status"):
		if err := migrate(ctx, cfg, args[1], stdout); err != nil {
			fmt.Fprintln(stderr, "migrate:", err)
			return 1
		}
		return 0
	case len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func migrate(ctx context.Context, cfg Config, cmd string, stdout io.Writer) error {
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, "")
	if err != nil {
		return err
	}
	defer db.Close()
	if cmd == "up" {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}
	return db.MigrationStatus(ctx, stdout)
}

// shutdownGrace bounds the whole shutdown; orchestrators kill at 30 s.
const shutdownGrace = 25 * time.Second

func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	if limit, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open-files limit", "err", err)
	} else if limit > 0 {
		log.Info("open-files limit", "limit", limit)
	}
	app, err := Build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()

	srv := &nethttp.Server{
		Addr:    net.JoinHostPort("", strconv.Itoa(cfg.Port)),
		Handler: app.Handler,
		// Timeouts bound what a slow or idle client can hold (slowloris).
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "env", cfg.Env, "durable", cfg.Durable())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	app.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// healthcheck probes /up on the local port, for container healthchecks.
func healthcheck(ctx context.Context, getenv func(string) string, stderr io.Writer) int {
	port := getenv("PORT")
	if port == "" {
		port = "3001"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, "http://127.0.0.1:"+port+"/up", nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		fmt.Fprintln(stderr, "/up answered", resp.Status)
		return 1
	}
	return 0
}
