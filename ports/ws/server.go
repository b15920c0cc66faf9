// Package ws is the WebSocket side of Chatterly: an Action Cable
// (actioncable-v1-json) server at /cable that the stock @rails/actioncable
// client speaks to, fanning events out from the broker to subscribers.
//
// The files follow a connection's life: upgrade.go admits it, dispatch.go
// runs its commands, channels.go holds what each channel does, conn.go
// writes to it, hub.go routes broker deliveries to it, and errors.go says
// what the client is told when something fails. The socket machinery
// (epoll, frame boundaries) is in internal/netpoll.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	nethttp "net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
)

// Config tunes the gateway; zero fields take the defaults.
type Config struct {
	// AllowedOrigins are the browser origins allowed besides the server's own.
	AllowedOrigins []string
	// SendQueueBytes bounds what may wait to be written to one client.
	SendQueueBytes int
	// WriteTimeout bounds each write to a client.
	WriteTimeout time.Duration
	// PingInterval is how often every client gets a ping (the client calls
	// a connection stale after 6 s of silence).
	PingInterval time.Duration
	// MaxFrameBytes bounds inbound frames; an SDP offer is a few KiB.
	MaxFrameBytes int64
	// MaxConnsPerUser bounds one user's open sockets, so that one account
	// cannot hold a whole instance's file descriptors; a browser tab is one.
	MaxConnsPerUser int
	// MaxSubscriptionsPerConn bounds one socket's subscriptions: each costs
	// memory and, for a new stream, a broker subscription.
	MaxSubscriptionsPerConn int
	// GoroutineReaders gives every connection a goroutine blocked reading
	// it, instead of the epoll poller (which only Linux has).
	GoroutineReaders bool
	// SessionTTL is how long a closed connection of the extended protocol
	// may be resumed (Deps.Sessions).
	SessionTTL time.Duration
	// ConnectRate bounds the connects an instance admits per second (0:
	// no bound), ConnectBurst how many at once (0: ConnectRate). The rest
	// are told server_busy and come back after their backoff: when every
	// client of a deploy reconnects together, those admitted are served
	// in time instead of all waiting past their clients' patience.
	ConnectRate  int
	ConnectBurst int
}

// Defaults of the caps in Config.
const (
	DefaultMaxConnsPerUser         = 20
	DefaultMaxSubscriptionsPerConn = 200
	DefaultSessionTTL              = 5 * time.Minute
)

// Deps are the services the channels call.
type Deps struct {
	Auth     *auth.Service
	Chat     *chat.Service
	Calls    *calls.Service
	Presence *presence.Service
	Broker   Broker
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Limits are the abuse limits of the channel actions; nil limits nothing.
	Limits *ratelimit.Policy
	// History serves the extended protocol's history requests and Sessions
	// its resumptions; without them, every request is rejected and no
	// session is offered.
	History  History
	Sessions Sessions
}

// Server is the /cable endpoint.
type Server struct {
	cfg      Config
	auth     *auth.Service
	chat     *chat.Service
	calls    *calls.Service
	presence *presence.Service
	hub      *hub
	log      *slog.Logger
	upgrader websocket.Upgrader
	poll     *netpoll.Poller // nil: a reader goroutine per connection
	chans    map[string]channel
	metrics  metrics
	now      func() time.Time
	limits   *ratelimit.Policy
	gate     admission
	history  History
	sessions Sessions
}

type metrics struct {
	connections prometheus.GaugeFunc
	tooSlow     prometheus.Counter
	rejected    prometheus.Counter
	busy        prometheus.Counter
}

// New builds the gateway. Call Deliver from the broker and Run for pings.
func New(cfg Config, d Deps) *Server {
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = 1 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 3 * time.Second
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = 64 << 10
	}
	if cfg.MaxConnsPerUser <= 0 {
		cfg.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if cfg.MaxSubscriptionsPerConn <= 0 {
		cfg.MaxSubscriptionsPerConn = DefaultMaxSubscriptionsPerConn
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.ConnectBurst <= 0 {
		cfg.ConnectBurst = cfg.ConnectRate
	}
	s := &Server{
		cfg: cfg, auth: d.Auth, chat: d.Chat, calls: d.Calls, presence: d.Presence, hub: newHub(d.Broker), log: d.Log, now: time.Now, limits: d.Limits,
		gate:    admission{max: cfg.MaxConnsPerUser, perUser: map[int64]int{}, rate: newConnectRate(cfg.ConnectRate, cfg.ConnectBurst)},
		history: d.History, sessions: d.Sessions,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.chans = s.channels()
	if !cfg.GoroutineReaders {
		s.poll = netpoll.Default()
	}
	s.upgrader = websocket.Upgrader{
		Subprotocols: []string{protocolPlain, protocolExt},
		// Client frames are commands of a few hundred bytes; larger ones
		// are read straight into the message, past the buffer.
		ReadBufferSize:  512,
		WriteBufferSize: 1024,
		// Write buffers are borrowed per write, so idle connections hold none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*nethttp.Request) bool { return true }, // checked before Upgrade, with a JSON 403
	}
	s.metrics = metrics{
		connections: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatterly_cable_connections", Help: "Open /cable connections."},
			func() float64 { return float64(s.hub.count()) }),
		tooSlow:  prometheus.NewCounter(prometheus.CounterOpts{Name: "chatterly_cable_too_slow_total", Help: "Connections closed because their send queue overflowed."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatterly_cable_rejected_subscriptions_total", Help: "Rejected subscriptions."}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatterly_cable_busy_total",
			Help: "Connects turned away (server_busy) over the connect rate."}),
	}
	if d.Registry != nil {
		d.Registry.MustRegister(s.metrics.connections, s.metrics.tooSlow, s.metrics.rejected, s.metrics.busy)
	}
	return s
}

// Deliver is the broker's callback: payload goes to the stream's
// subscribers but those that ev evicts, whose subscriptions end; pos is
// its place in the stream's history, which extended-protocol clients get.
func (s *Server) Deliver(stream string, payload []byte, ev chat.Eviction, pos chat.Position) {
	s.hub.deliver(stream, payload, ev, pos)
}

var _ auth.Listener = (*Server)(nil)

// Listen calls fn with every payload published to stream, on any
// instance, from when it returns until stop is called. fn must not block.
func (s *Server) Listen(ctx context.Context, stream string, fn func(payload []byte)) (stop func(), err error) {
	if err := s.hub.acquire(ctx, stream); err != nil {
		return nil, err
	}
	l := &listener{fn: fn}
	s.hub.listen(stream, l)
	var once sync.Once
	return func() { once.Do(func() { s.hub.unlisten(stream, l) }) }, nil
}

// Start has auth hear the logouts of every instance through the gateway,
// and closes the sockets of each token logged out. It returns once that
// is live.
func (s *Server) Start(ctx context.Context) error {
	s.auth.OnRevoke(s.hub.revoke)
	_, err := s.auth.WatchRevocations(ctx, s)
	return err
}

// Run pings every client once per PingInterval until ctx is done. One
// ticker serves all connections: each tick pings one of the hub's groups,
// so pings never arrive as one burst of 10,000 writes that broadcasts
// would queue behind.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PingInterval / pingSlices)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ping := framePing(now.Unix())
			s.hub.eachInSlice(tick%pingSlices, func(c *conn) { c.send(ping) })
		}
	}
}

// Shutdown tells every client to reconnect elsewhere and waits, until ctx
// is done, for their connections to close.
func (s *Server) Shutdown(ctx context.Context) {
	s.gate.drain()
	var all []*conn
	s.hub.each(func(c *conn) {
		all = append(all, c)
		if c.ext != nil && c.ext.sid != "" {
			c.closeForRestart()
		} else {
			c.disconnect(frameServerRestart)
		}
	})
	for _, c := range all {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
