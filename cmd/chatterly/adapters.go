package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/ports/ws"
)

// partitionsAhead is how many months of message partitions exist beyond the current one.
const partitionsAhead = 3

// Broker is what the app needs of memory.Broker and redis.Broker.
type Broker interface {
	ws.Broker
	ws.History
	Close()
}

// CallStore is what the calls service keeps its calls in; chat reads the
// call summaries of call-log messages from the same store.
type CallStore interface {
	calls.Store
	chat.Calls
}

// Adapters are the outbound side of the graph, the first of Build's steps.
// Build hands them to its overrides before the core services take them, so
// that a test can replace one with a broken or recording wrapper.
type Adapters struct {
	Users    users.Store
	Chats    chat.Store
	Calls    CallStore
	Presence presence.Tracker
	Limiter  ratelimit.Limiter
	Denylist auth.Denylist
	// Broker carries events between instances and delivers the streams the
	// gateway subscribed to it.
	Broker Broker
	// Sessions keeps the cable sessions that clients resume.
	Sessions ws.Sessions

	// checks are what /readyz needs reachable besides the app itself.
	checks []func(context.Context) error
	// collectors are the adapters' own metrics.
	collectors []prometheus.Collector
	// closers release what was opened, in reverse order.
	closers []func()
}

// openAdapters opens PostgreSQL + Redis when cfg.Durable(), memory adapters
// otherwise. The broker calls deliver with every message of a stream
// subscribed through it. On an error, what was opened is closed again.
func openAdapters(ctx context.Context, cfg Config, log *slog.Logger, deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) (*Adapters, error) {
	a := &Adapters{}
	if !cfg.Durable() {
		log.Warn("IN-MEMORY MODE: no DATABASE_URL/REDIS_URL, so nothing is durable; every account and message is lost when the process exits")
		a.openMemory(cfg, deliver)
		return a, nil
	}
	if err := a.openDurable(ctx, cfg, log, deliver); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *Adapters) openMemory(cfg Config, deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) {
	events := memory.NewBus().KeepHistory(cfg.CableHistory, time.Now).NewBroker(deliver)
	a.Sessions = memory.NewSessions(time.Now)
	a.closers = append(a.closers, events.Close)
	chats := memory.NewChatStore()
	a.Users, a.Chats, a.Calls = memory.NewUserStore(), chats, memory.NewCallStore(chats)
	a.Presence, a.Limiter, a.Denylist, a.Broker = memory.NewPresence(), memory.NewRateLimiter(), memory.NewDenylist(), events
}

func (a *Adapters) openDurable(ctx context.Context, cfg Config, log *slog.Logger, deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) error {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	a.closers = append(a.closers, db.Close)
	a.collectors = append(a.collectors, db.Collector())
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	parts := postgres.NewPartitions(db)
	if err := parts.EnsureAhead(ctx, time.Now(), partitionsAhead); err != nil {
		return fmt.Errorf("message partitions: %w", err)
	}
	a.goBackground(func(bg context.Context) { parts.Maintain(bg, time.Now, 24*time.Hour, log) })
	prefix := cfg.RedisPrefix
	if prefix == "" {
		prefix = "chatterly:"
	}
	rc, err := redis.Open(ctx, cfg.RedisURL, prefix)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	a.closers = append(a.closers, rc.Close)
	a.collectors = append(a.collectors, rc.Metrics())
	events, err := redis.NewBroker(rc, deliver)
	if err != nil {
		return fmt.Errorf("redis pub/sub: %w", err)
	}
	events.KeepHistory(cfg.CableHistory)
	a.Sessions = redis.NewSessions(rc)
	a.closers = append(a.closers, events.Close)
	a.Users, a.Chats, a.Calls = postgres.NewUserStore(db), postgres.NewChatStore(db, parts), postgres.NewCallStore(db, parts)
	a.Presence, a.Limiter, a.Denylist, a.Broker = redis.NewPresence(rc), redis.NewRateLimiter(rc), redis.NewDenylist(rc), events
	a.checks = append(a.checks, db.Ping, rc.Ping, func(ctx context.Context) error {
		ok, err := db.MigrationsApplied(ctx)
		if err == nil && !ok {
			err = errors.New("migrations pending")
		}
		return err
	})
	return nil
}

// openDB opens the pools cfg names: migrations on the direct URL when there
// is one, everything else on the (perhaps pooled) DATABASE_URL and replica.
func openDB(ctx context.Context, cfg Config) (*postgres.DB, error) {
	return postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseReplicaURL,
		postgres.WithDirectURL(cfg.DatabaseDirectURL), postgres.WithQueryMode(cfg.DatabaseQueryMode))
}

// goBackground runs fn until the adapters close; closing waits for it to
// return, so that it never uses a pool already closed.
func (a *Adapters) goBackground(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	a.closers = append(a.closers, func() {
		cancel()
		<-done
	})
}

// close releases what was opened, the last opened first. The broker closes
// before the Redis client it runs on, the partition maintainer stops before
// the pool it uses.
func (a *Adapters) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
