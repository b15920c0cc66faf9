package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/users"
	httpport "github.com/chatterly/chatterly/ports/http"
)

// App is the wired server: adapters, core services and ports.
type App struct {
	Handler nethttp.Handler
	// Denylist is exposed so that tests can break it and watch the API answer 503.
	Denylist auth.Denylist

	log      *slog.Logger
	streams  *streams
	draining atomic.Bool
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closers  []func()
}

// partitionsAhead is how many months of message partitions exist beyond the current one.
const partitionsAhead = 3

// Build wires the server for cfg: PostgreSQL + Redis when cfg.Durable(),
// in-memory adapters otherwise. Close releases what it opened.
func Build(ctx context.Context, cfg Config, log *slog.Logger) (app *App, err error) {
	bg, stop := context.WithCancel(context.Background())
	app = &App{log: log, stop: stop, streams: newStreams()}
	defer func() {
		if err != nil {
			app.Close()
		}
	}()

	var (
		store     users.Store
		chatStore chat.Store
		tracker   presence.Tracker
		checks    []func(context.Context) error
	)
	if cfg.Durable() {
		db, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseReplicaURL)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		app.closers = append(app.closers, db.Close)
		if err := db.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		parts := postgres.NewPartitions(db)
		if err := parts.EnsureAhead(ctx, time.Now(), partitionsAhead); err != nil {
			return nil, fmt.Errorf("message partitions: %w", err)
		}
		app.wg.Add(1)
		go func() {
			defer app.wg.Done()
			parts.Maintain(bg, time.Now, 24*time.Hour, log)
		}()
		rc, err := redis.Open(ctx, cfg.RedisURL, "chatterly:")
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		app.closers = append(app.closers, rc.Close)
		store = postgres.NewUserStore(db)
		chatStore = postgres.NewChatStore(db, parts)
		b, err := redis.NewBroker(rc, app.streams.deliver)
		if err != nil {
			return nil, fmt.Errorf("redis pub/sub: %w", err)
		}
		app.streams.broker = b
		app.closers = append(app.closers, b.Close)
		app.Denylist = redis.NewDenylist(rc)
		tracker = redis.NewPresence(rc)
		checks = append(checks, db.Ping, rc.Ping, func(ctx context.Context) error {
			ok, err := db.MigrationsApplied(ctx)
			if err == nil && !ok {
				err = errors.New("migrations pending")
			}
			return err
		})
	} else {
		log.Warn("IN-MEMORY MODE: no DATABASE_URL/REDIS_URL, so nothing is durable; every account and message is lost when the process exits")
		store = memory.NewUserStore()
		chatStore = memory.NewChatStore()
		app.streams.broker = memory.NewBroker(app.streams.deliver)
		app.closers = append(app.closers, app.streams.broker.Close)
		app.Denylist = memory.NewDenylist()
		tracker = memory.NewPresence()
	}
	if cfg.JWTSecretGenerated {
		log.Warn("no DEVISE_JWT_SECRET_KEY: generated a random JWT secret, so tokens stop working when the process exits")
	}

	signer, err := token.NewSigner(cfg.JWTSecret)
	if err != nil {
		return nil, err
	}
	authCfg := auth.DefaultConfig()
	authCfg.BcryptCost = cfg.BcryptCost
	authSvc, err := auth.NewService(store, signer, app.Denylist, authCfg)
	if err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app.Handler = httpport.New(httpport.Deps{
		Auth:  authSvc,
		Users: users.NewService(store, tracker),
		Chat: chat.NewService(chat.Deps{
			Store: chatStore, Users: store, Presence: tracker, Publisher: app.streams.broker, Log: log,
		}),
		AllowedOrigins: cfg.AllowedOrigins,
		Log:            log,
		Registry:       reg,
		Ready: func(ctx context.Context) error {
			if app.draining.Load() {
				return errors.New("shutting down")
			}
			for _, check := range checks {
				if err := check(ctx); err != nil {
					return err
				}
			}
			return nil
		},
	})
	return app, nil
}

// Subscribe delivers every event published to stream (on any instance)
// after it returns, until cancel is called. Tests watch events with it.
func (a *App) Subscribe(ctx context.Context, stream string) (events <-chan []byte, cancel func(), err error) {
	return a.streams.subscribe(ctx, stream)
}

// Drain makes /readyz fail so that load balancers stop sending traffic.
func (a *App) Drain() { a.draining.Store(true) }

// Close stops background work and closes the adapters.
func (a *App) Close() {
	a.stop()
	a.wg.Wait()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
