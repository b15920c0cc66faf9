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
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/users"
	httpport "github.com/chatterly/chatterly/ports/http"
	"github.com/chatterly/chatterly/ports/ws"
)

// App is the wired server: adapters, core services and ports.
type App struct {
	Handler nethttp.Handler
	// Denylist is exposed so that tests can break it and watch the API answer 503.
	Denylist auth.Denylist
	// RateLimiter is exposed so that tests can break it and watch which
	// limits fail open and which closed.
	RateLimiter ratelimit.Limiter

	log      *slog.Logger
	cable    *ws.Server
	draining atomic.Bool
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closers  []func()
}

// partitionsAhead is how many months of message partitions exist beyond the current one.
const partitionsAhead = 3

// sweepEvery is how often each instance looks for users whose presence lapsed.
const sweepEvery = 5 * time.Second

// broker is what the app needs of memory.Broker and redis.Broker.
type broker interface {
	ws.Broker
	Close()
}

// Build wires the server for cfg: PostgreSQL + Redis when cfg.Durable(),
// in-memory adapters otherwise. Close releases what it opened.
func Build(ctx context.Context, cfg Config, log *slog.Logger) (app *App, err error) {
	bg, stop := context.WithCancel(context.Background())
	app = &App{log: log, stop: stop}
	defer func() {
		if err != nil {
			app.Close()
		}
	}()
	// The broker delivers only streams the gateway subscribed, so the
	// gateway exists before the first delivery.
	deliver := func(stream string, payload []byte, ev chat.Eviction) { app.cable.Deliver(stream, payload, ev) }

	var (
		store     users.Store
		chatStore chat.Store
		callStore calls.Store
		tracker   presence.Tracker
		limiter   ratelimit.Limiter
		events    broker
		checks    []func(context.Context) error
		metrics   []prometheus.Collector // the adapters' own
	)
	if cfg.Durable() {
		db, err := openDB(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		app.closers = append(app.closers, db.Close)
		metrics = append(metrics, db.Collector())
		if err := db.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		parts := postgres.NewPartitions(db)
		if err := parts.EnsureAhead(ctx, time.Now(), partitionsAhead); err != nil {
			return nil, fmt.Errorf("message partitions: %w", err)
		}
		app.goBackground(func() { parts.Maintain(bg, time.Now, 24*time.Hour, log) })
		prefix := cfg.RedisPrefix
		if prefix == "" {
			prefix = "chatterly:"
		}
		rc, err := redis.Open(ctx, cfg.RedisURL, prefix)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		app.closers = append(app.closers, rc.Close)
		metrics = append(metrics, rc.Metrics())
		b, err := redis.NewBroker(rc, deliver)
		if err != nil {
			return nil, fmt.Errorf("redis pub/sub: %w", err)
		}
		events = b
		store = postgres.NewUserStore(db)
		chatStore = postgres.NewChatStore(db, parts)
		callStore = postgres.NewCallStore(db, parts)
		app.Denylist = redis.NewDenylist(rc)
		tracker = redis.NewPresence(rc)
		limiter = redis.NewRateLimiter(rc)
		checks = append(checks, db.Ping, rc.Ping, func(ctx context.Context) error {
			ok, err := db.MigrationsApplied(ctx)
			if err == nil && !ok {
				err = errors.New("migrations pending")
			}
			return err
		})
	} else {
		log.Warn("IN-MEMORY MODE: no DATABASE_URL/REDIS_URL, so nothing is durable; every account and message is lost when the process exits")
		events = memory.NewBroker(deliver)
		store = memory.NewUserStore()
		chats := memory.NewChatStore()
		chatStore, callStore = chats, memory.NewCallStore(chats)
		app.Denylist = memory.NewDenylist()
		tracker = memory.NewPresence()
		limiter = memory.NewRateLimiter()
	}
	app.closers = append(app.closers, events.Close)
	events = countPublishFailures(events, log)
	store = users.NewCache(store, cfg.UserCacheTTL, nil)
	if cfg.JWTSecretGenerated {
		log.Warn("no DEVISE_JWT_SECRET_KEY: generated a random JWT secret, so tokens stop working when the process exits")
	}

	signer, err := token.NewSigner(cfg.JWTSecret)
	if err != nil {
		return nil, err
	}
	authCfg := auth.DefaultConfig()
	authCfg.BcryptCost = cfg.BcryptCost
	authCfg.Revocations = events
	authCfg.OutageGrace = cfg.AuthOutageGrace
	authSvc, err := auth.NewService(store, signer, app.Denylist, authCfg)
	if err != nil {
		return nil, err
	}
	presenceSvc := presence.NewService(tracker, chatStore, store, events, nil, log)
	chatSvc := chat.NewService(chat.Deps{
		Store: chatStore, Users: store, Presence: tracker, Publisher: events, Introducer: presenceSvc, Log: log,
	})

	callSvc := calls.NewService(calls.Deps{
		Store: callStore, Members: chatStore, Users: store, Online: tracker, Publisher: events,
		Messages: chatSvc, RingTimeout: cfg.CallRingTimeout, LeaveGrace: cfg.CallLeaveGrace, Log: log,
	})
	app.goBackground(func() { callSvc.RunSweeper(bg, time.Second) })

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(events.(prometheus.Collector)) // countPublishFailures
	reg.MustRegister(metrics...)
	if c, ok := store.(*users.Cache); ok {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "chatterly_user_cache_hits_total",
				Help: "User reads by id answered from memory (USER_CACHE_TTL).",
			}, func() float64 { h, _ := c.Stats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "chatterly_user_cache_misses_total",
				Help: "User reads by id that went to the store.",
			}, func() float64 { _, m := c.Stats(); return float64(m) }),
		)
	}
	if cfg.RateLimitsOff {
		log.Warn("RATE_LIMITS=off: no abuse limits; use it for load tests only")
	}
	app.RateLimiter = limiter
	limits := ratelimit.NewPolicy(limiter, cfg.Limits(), log)
	app.cable = ws.New(ws.Config{AllowedOrigins: cfg.AllowedOrigins, SendQueueBytes: cfg.CableSendQueueBytes, GoroutineReaders: cfg.CableGoroutineReaders},
		ws.Deps{Auth: authSvc, Chat: chatSvc, Calls: callSvc, Presence: presenceSvc, Broker: events, Log: log, Registry: reg, Limits: limits})
	if err := app.cable.Start(ctx); err != nil {
		return nil, fmt.Errorf("cable: %w", err)
	}
	app.goBackground(func() { app.cable.Run(bg) })
	app.goBackground(func() { presenceSvc.RunSweeper(bg, sweepEvery) })

	app.Handler = httpport.New(httpport.Deps{
		Auth:            authSvc,
		Users:           users.NewService(store, tracker),
		Chat:            chatSvc,
		Calls:           callSvc,
		ICE:             calls.ICE{STUN: cfg.STUNURLs, TURN: cfg.TURNURLs, Secret: cfg.TURNSecret, TTL: cfg.TURNTTL},
		Cable:           app.cable,
		AllowedOrigins:  cfg.AllowedOrigins,
		Limits:          limits,
		TrustedProxies:  cfg.TrustedProxies,
		SharedAddresses: cfg.SharedAddresses,
		Log:             log,
		Registry:        reg,
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

// openDB opens the pools cfg names: migrations on the direct URL when there
// is one, everything else on the (perhaps pooled) DATABASE_URL and replica.
func openDB(ctx context.Context, cfg Config) (*postgres.DB, error) {
	return postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseReplicaURL,
		postgres.WithDirectURL(cfg.DatabaseDirectURL), postgres.WithQueryMode(cfg.DatabaseQueryMode))
}

func (a *App) goBackground(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// Subscribe delivers every event published to stream (on any instance)
// after it returns, until cancel is called. Tests watch events with it; a
// watcher that falls 256 events behind loses the excess.
func (a *App) Subscribe(ctx context.Context, stream string) (events <-chan []byte, cancel func(), err error) {
	ch := make(chan []byte, 256)
	stop, err := a.cable.Listen(ctx, stream, func(p []byte) {
		select {
		case ch <- p:
		default:
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return ch, stop, nil
}

// drainGrace bounds how long Drain waits for sockets to close.
const drainGrace = 10 * time.Second

// Drain makes /readyz fail so that load balancers stop sending traffic,
// then tells every WebSocket client to reconnect (elsewhere) and waits for
// their sockets to close: http.Server.Shutdown does not touch them.
func (a *App) Drain() {
	a.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), drainGrace)
	defer cancel()
	a.cable.Shutdown(ctx)
}

// Close closes every socket, stops background work and closes the adapters.
func (a *App) Close() {
	if a.cable != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.cable.Shutdown(ctx)
		cancel()
	}
	a.stop()
	a.wg.Wait()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
