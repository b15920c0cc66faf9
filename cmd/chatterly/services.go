package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/users"
)

// sweepEvery is how often each instance looks for users whose presence lapsed.
const sweepEvery = 5 * time.Second

// services are the core of the graph, on the adapters: the second of Build's steps.
type services struct {
	// events is the adapters' broker, counting the publishes that fail.
	events *countingBroker
	// userStore is the adapters' user store behind the user cache.
	userStore users.Store
	auth      *auth.Service
	users     *users.Service
	presence  *presence.Service
	chat      *chat.Service
	calls     *calls.Service
	limits    *ratelimit.Policy
}

func newServices(cfg Config, log *slog.Logger, a *Adapters) (*services, error) {
	events := countPublishFailures(a.Broker, log)
	store := users.NewCache(a.Users, cfg.UserCacheTTL, nil)
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
	authSvc, err := auth.NewService(store, signer, a.Denylist, authCfg)
	if err != nil {
		return nil, err
	}
	presenceSvc := presence.NewService(a.Presence, a.Chats, store, events, nil, log)
	chatSvc := chat.NewService(chat.Deps{
		Store: a.Chats, Calls: a.Calls, Users: store, Presence: a.Presence, Publisher: events, Introducer: presenceSvc, Log: log,
	})
	callSvc := calls.NewService(calls.Deps{
		Store: a.Calls, Members: a.Chats, Users: store, Online: a.Presence, Publisher: events,
		Messages: chatSvc, RingTimeout: cfg.CallRingTimeout, LeaveGrace: cfg.CallLeaveGrace, Log: log,
	})

	if cfg.RateLimitsOff {
		log.Warn("RATE_LIMITS=off: no abuse limits; use it for load tests only")
	}
	return &services{
		events:    events,
		userStore: store,
		auth:      authSvc,
		users:     users.NewService(store, a.Presence),
		presence:  presenceSvc,
		chat:      chatSvc,
		calls:     callSvc,
		limits:    ratelimit.NewPolicy(a.Limiter, cfg.Limits(), log),
	}, nil
}

// sweep runs the services' timers until ctx is done: calls that rang out
// or were left, users whose presence lapsed.
func (s *services) sweep(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.calls.RunSweeper(ctx, time.Second)
	}()
	s.presence.RunSweeper(ctx, sweepEvery)
	<-done
}
