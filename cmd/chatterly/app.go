package main

import (
	"context"
	"log/slog"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/ports/ws"
)

// App is the wired server: adapters, core services and ports.
type App struct {
	Handler nethttp.Handler

	log      *slog.Logger
	adapters *Adapters
	cable    *ws.Server
	draining atomic.Bool
	wg       sync.WaitGroup
	stops    []context.CancelFunc
}

// Build wires the server for cfg in three steps: the adapters (PostgreSQL +
// Redis when cfg.Durable(), in memory otherwise), the core services on them,
// and the ports that serve the services. The overrides see the adapters
// between the first step and the second: tests break or wrap one there.
// Close releases what Build opened; Build releases it itself when it fails.
func Build(ctx context.Context, cfg Config, log *slog.Logger, overrides ...func(*Adapters)) (app *App, err error) {
	app = &App{log: log}
	defer func() {
		if err != nil {
			app.Close()
		}
	}()
	if app.adapters, err = openAdapters(ctx, cfg, log, app.deliver); err != nil {
		return nil, err
	}
	for _, override := range overrides {
		override(app.adapters)
	}
	svc, err := newServices(cfg, log, app.adapters)
	if err != nil {
		return nil, err
	}
	if err := app.openPorts(ctx, cfg, svc); err != nil {
		return nil, err
	}
	// The sweepers publish, so they start once the gateway can deliver.
	app.goBackground(svc.sweep)
	return app, nil
}

// deliver hands the broker's messages to the gateway. The broker delivers
// only the streams the gateway subscribed, so the gateway exists by the
// first delivery although the broker is opened before it.
func (app *App) deliver(stream string, payload []byte, ev chat.Eviction, pos chat.Position) {
	app.cable.Deliver(stream, payload, ev, pos)
}

// goBackground runs fn until Close.
func (app *App) goBackground(fn func(ctx context.Context)) {
	ctx, stop := context.WithCancel(context.Background())
	app.stops = append(app.stops, stop)
	app.wg.Add(1)
	go func() {
		defer app.wg.Done()
		fn(ctx)
	}()
}

// drainGrace bounds how long Drain waits for sockets to close.
const drainGrace = 10 * time.Second

// Drain makes /readyz fail so that load balancers stop sending traffic,
// then tells every WebSocket client to reconnect (elsewhere) and waits for
// their sockets to close: http.Server.Shutdown does not touch them.
func (app *App) Drain() {
	app.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), drainGrace)
	defer cancel()
	app.cable.Shutdown(ctx)
}

// Close closes every socket, stops background work and closes the adapters.
func (app *App) Close() {
	if app.cable != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		app.cable.Shutdown(ctx)
		cancel()
	}
	for _, stop := range app.stops {
		stop()
	}
	app.stops = nil
	app.wg.Wait()
	if app.adapters != nil {
		app.adapters.close()
	}
}
