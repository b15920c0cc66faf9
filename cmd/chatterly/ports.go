package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/users"
	httpport "github.com/chatterly/chatterly/ports/http"
	"github.com/chatterly/chatterly/ports/ws"
)

// openPorts serves the services: the WebSocket gateway, and the HTTP
// handler that routes /cable to it. It is the last of Build's steps.
func (app *App) openPorts(ctx context.Context, cfg Config, svc *services) error {
	reg := newRegistry(app.adapters, svc)
	app.cable = ws.New(ws.Config{AllowedOrigins: cfg.AllowedOrigins, SendQueueBytes: cfg.CableSendQueueBytes, GoroutineReaders: cfg.CableGoroutineReaders,
		SessionTTL: cfg.CableSessionTTL, ConnectRate: cfg.CableConnectRate, ConnectBurst: cfg.CableConnectBurst},
		ws.Deps{Auth: svc.auth, Chat: svc.chat, Calls: svc.calls, Presence: svc.presence, Broker: svc.events, Log: app.log, Registry: reg, Limits: svc.limits,
			History: app.adapters.Broker, Sessions: app.adapters.Sessions})
	if err := app.cable.Start(ctx); err != nil {
		return fmt.Errorf("cable: %w", err)
	}
	app.goBackground(app.cable.Run)

	app.Handler = httpport.New(httpport.Deps{
		Auth:            svc.auth,
		Users:           svc.users,
		Chat:            svc.chat,
		Calls:           svc.calls,
		ICE:             calls.ICE{STUN: cfg.STUNURLs, TURN: cfg.TURNURLs, Secret: cfg.TURNSecret, TTL: cfg.TURNTTL},
		Cable:           app.cable,
		AllowedOrigins:  cfg.AllowedOrigins,
		Limits:          svc.limits,
		TrustedProxies:  cfg.TrustedProxies,
		SharedAddresses: cfg.SharedAddresses,
		Log:             app.log,
		Registry:        reg,
		Ready:           app.ready,
	})
	return nil
}

// ready fails while draining, so that load balancers stop sending traffic,
// and while an adapter's backend is unreachable.
func (app *App) ready(ctx context.Context) error {
	if app.draining.Load() {
		return errors.New("shutting down")
	}
	for _, check := range app.adapters.checks {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newRegistry is what /metrics serves, besides what the ports register
// themselves: the runtime's, the adapters' and the services' metrics.
func newRegistry(a *Adapters, svc *services) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(svc.events)
	reg.MustRegister(a.collectors...)
	if c, ok := svc.userStore.(*users.Cache); ok {
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
	return reg
}
