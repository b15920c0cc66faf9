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

	httpport "github.com/chatterly/chatterly/ports/http"
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

// newLogger logs JSON to w; a line logged while serving an HTTP request
// names the request's id (httpport.WithRequestID).
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(httpport.WithRequestID(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

func migrate(ctx context.Context, cfg Config, cmd string, stdout io.Writer) error {
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	db, err := openDB(ctx, cfg)
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

	srv := newHTTPServer(net.JoinHostPort("", strconv.Itoa(cfg.Port)), app.Handler, defaultHTTPLimits, log)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", srv.Addr)
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

// httpLimits bound what one client can hold of the HTTP server.
type httpLimits struct {
	// ReadHeaderTimeout cuts off a client that sends its headers slowly
	// (slowloris): it holds a connection and a goroutine while it does.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; bodies are
	// at most 1 MiB, which takes seconds even on a poor mobile link.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response. /cable clears it after the upgrade.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections that carry no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (Go answers 431
	// beyond it); a bearer token and a browser's headers take about 2 KiB.
	MaxHeaderBytes int
	// RequestTimeout is the deadline of each request's context. A database
	// that hangs (rather than refusing connections) would otherwise hold a
	// request until it answers; with it, the request fails with 503.
	RequestTimeout time.Duration
}

var defaultHTTPLimits = httpLimits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       120 * time.Second,
	MaxHeaderBytes:    16 << 10,
	RequestTimeout:    10 * time.Second,
}

// newHTTPServer is the server for handler at addr with lim applied; its
// own errors (a TLS handshake, a handler's panic) go to log as warnings.
func newHTTPServer(addr string, handler nethttp.Handler, lim httpLimits, log *slog.Logger) *nethttp.Server {
	return &nethttp.Server{
		Addr:              addr,
		Handler:           withDeadline(handler, lim.RequestTimeout),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// withDeadline gives every request's context a deadline d away. /cable is
// unaffected past its upgrade: the socket's work runs on contexts of its own.
func withDeadline(h nethttp.Handler, d time.Duration) nethttp.Handler {
	if d <= 0 {
		return h
	}
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
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
