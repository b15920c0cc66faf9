// Package ws is the WebSocket side of Chatterly: an Action Cable
// (actioncable-v1-json) server at /cable that the stock @rails/actioncable
// client speaks to, fanning events out from the broker to subscribers.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatterly/chatterly/core"
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
}

// Defaults of the caps in Config.
const (
	DefaultMaxConnsPerUser         = 20
	DefaultMaxSubscriptionsPerConn = 200
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

	mu       sync.Mutex
	draining bool
	perUser  map[int64]int // open sockets by user id
}

type metrics struct {
	connections prometheus.GaugeFunc
	tooSlow     prometheus.Counter
	rejected    prometheus.Counter
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
	s := &Server{
		cfg: cfg, auth: d.Auth, chat: d.Chat, calls: d.Calls, presence: d.Presence, hub: newHub(d.Broker), log: d.Log, now: time.Now, limits: d.Limits,
		perUser: map[int64]int{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.chans = s.channels()
	if !cfg.GoroutineReaders {
		s.poll = netpoll.Default()
	}
	s.upgrader = websocket.Upgrader{
		Subprotocols: []string{"actioncable-v1-json"},
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
	}
	if d.Registry != nil {
		d.Registry.MustRegister(s.metrics.connections, s.metrics.tooSlow, s.metrics.rejected)
	}
	return s
}

// Deliver is the broker's callback.
func (s *Server) Deliver(stream string, payload []byte) { s.hub.deliver(stream, payload) }

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

// Start subscribes to the streams every instance needs. It returns once they are live.
func (s *Server) Start(ctx context.Context) error {
	return s.hub.acquire(ctx, auth.RevocationStream)
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
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	var all []*conn
	s.hub.each(func(c *conn) {
		all = append(all, c)
		c.disconnect(frameServerRestart)
	})
	for _, c := range all {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
	}
}

// ServeHTTP upgrades GET /cable.
func (s *Server) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if !s.originAllowed(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(nethttp.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":"Origin not allowed"}` + "\n"))
		return
	}
	bw := &netpoll.BoundedWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(bw, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	if s.isDraining() {
		refuse(ws, frameServerRestart)
		return
	}
	u, claims, err := s.auth.Authenticate(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		if core.Is(err, core.Unauthenticated) {
			refuse(ws, frameUnauthorized)
		} else {
			// The denylist could not be checked: let the client retry rather than sign out.
			s.log.WarnContext(r.Context(), "cable authentication failed", "err", err)
			refuse(ws, frameServerRestart)
		}
		return
	}
	// net/http leaves its read/write timeouts on a hijacked connection;
	// a socket lives far longer, and writes set their own deadlines.
	_ = ws.NetConn().SetDeadline(time.Time{})
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	c := &conn{srv: s, ws: ws, raw: bw.Conn, id: newID(), user: u, claims: claims, subs: map[string]*subscription{}, done: make(chan struct{})}
	switch s.admit(c) {
	case admitDraining:
		refuse(ws, frameServerRestart)
		return
	case admitTooMany:
		s.log.InfoContext(r.Context(), "cable: too many connections for one user; refused", "user_id", u.ID, "max", s.cfg.MaxConnsPerUser)
		refuse(ws, frameTooManyConnections)
		return
	}
	c.mu.Lock()
	c.expiry = time.AfterFunc(time.Until(claims.ExpiresAt), func() { c.disconnect(frameUnauthorized) })
	c.mu.Unlock()
	c.send(frameWelcome)
	s.log.DebugContext(r.Context(), "cable connected", "user_id", u.ID, "conn", c.id)
	// The handler returns either way: its stack (grown through the
	// middleware and the upgrade) and net/http's per-connection buffers
	// are released instead of living as long as the socket.
	if s.poll != nil && c.raw != nil && c.raw.TCP != nil {
		// Registered under c.mu, so that shut either finds the
		// registration to remove or has closed c before it is made.
		c.mu.Lock()
		if !c.closed {
			c.polled, _ = s.poll.Add(c.raw.TCP, func() { s.readReady(c) })
		}
		polled := c.polled != nil
		c.mu.Unlock()
		if polled {
			return
		}
	}
	go s.read(c)
}

// readReady reads what a polled client has sent, then re-arms the poller.
func (s *Server) readReady(c *conn) {
	c.mu.Lock()
	if c.closed { // shut has cleaned up, or will
		c.mu.Unlock()
		return
	}
	c.reading = true
	c.mu.Unlock()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			s.readFailed(c, err)
			c.cleanup()
			return
		}
		if kind == websocket.TextMessage {
			s.handle(c, data)
		}
		if c.raw.AtBoundary() {
			break
		}
	}
	c.mu.Lock()
	c.reading = false
	closed := c.closed
	c.mu.Unlock()
	if closed || c.polled.Rearm() != nil {
		c.cleanup()
	}
}

// readFailed answers a frame over the limit; other read errors mean the
// connection is gone.
func (s *Server) readFailed(c *conn, err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		s.log.Info("cable frame over the limit; closing", "user_id", c.user.ID)
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), time.Now().Add(time.Second))
	}
}

// refuse sends a final frame on a connection that never got a welcome.
func refuse(ws *websocket.Conn, frame []byte) {
	_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteMessage(websocket.TextMessage, frame)
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = ws.Close()
}

// originAllowed accepts the configured origins and the server's own; a
// request without Origin does not come from a browser page.
func (s *Server) originAllowed(r *nethttp.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.cfg.AllowedOrigins, strings.TrimRight(origin, "/")) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

type admission int

const (
	admitted admission = iota
	admitDraining
	admitTooMany
)

// admit counts c against its user's cap and adds it to the hub, unless the
// user has as many sockets as allowed or the server is draining; leave
// uncounts it. Adding under s.mu means Shutdown, which sets draining under
// it before it walks the hub, either refuses c here or finds it there.
func (s *Server) admit(c *conn) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return admitDraining
	case s.perUser[c.user.ID] >= s.cfg.MaxConnsPerUser:
		return admitTooMany
	}
	s.perUser[c.user.ID]++
	s.hub.addConn(c)
	return admitted
}

func (s *Server) leave(user int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[user] <= 1 {
		delete(s.perUser, user)
	} else {
		s.perUser[user]--
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

func (s *Server) read(c *conn) {
	defer c.cleanup()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			s.readFailed(c, err)
			return
		}
		if kind != websocket.TextMessage {
			continue
		}
		// Commands run on a goroutine of their own while the reader waits
		// (so they stay in order): subscribing goes deep (JSON, SQL, Redis)
		// and would leave the reader, idle for the socket's life, with a
		// grown stack. Commands are rare; a goroutine start costs ~1 µs.
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(c, data)
		}()
		<-done
	}
}

var errReject = errors.New("subscription rejected")

// handle runs one client command. Malformed commands are ignored: an error
// in a command never closes the connection.
func (s *Server) handle(c *conn, data []byte) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		s.log.Debug("cable: malformed frame ignored", "user_id", c.user.ID)
		return
	}
	var identifier string
	if json.Unmarshal(cmd.Identifier, &identifier) != nil {
		s.log.Debug("cable: command without a string identifier ignored", "user_id", c.user.ID, "command", cmd.Command)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch cmd.Command {
	case "subscribe":
		s.subscribe(ctx, c, identifier)
	case "unsubscribe":
		c.mu.Lock()
		sub := c.subs[identifier]
		c.mu.Unlock()
		if sub != nil {
			c.drop(sub)
		}
	case "message":
		s.perform(ctx, c, identifier, cmd.Data)
	default:
		s.log.Debug("cable: unknown command ignored", "user_id", c.user.ID, "command", cmd.Command)
	}
}

func (s *Server) subscribe(ctx context.Context, c *conn, identifier string) {
	c.mu.Lock()
	_, dup := c.subs[identifier]
	c.mu.Unlock()
	if dup {
		return // the client's guarantor re-sends until it hears back
	}
	identJSON := identifierJSON(identifier)
	reject := func(reason string, err error) {
		s.metrics.rejected.Inc()
		s.log.Debug("cable: subscription rejected", "user_id", c.user.ID, "reason", reason, "err", err)
		c.send(frameReject(identJSON))
	}
	// Subscriptions are added only by this connection's reader, which runs
	// this, so the count cannot grow between the check and the add below.
	c.mu.Lock()
	held := len(c.subs)
	c.mu.Unlock()
	if held >= s.cfg.MaxSubscriptionsPerConn {
		reject("too many subscriptions on the connection", nil)
		return
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal([]byte(identifier), &params); err != nil {
		reject("identifier is not a JSON object", err)
		return
	}
	var name string
	if json.Unmarshal(params["channel"], &name) != nil {
		reject("no channel", nil)
		return
	}
	ch, ok := s.chans[name]
	if !ok {
		reject("unknown channel", nil)
		return
	}
	// A subscription that cannot be authorized or attached because a service
	// is down is not refused: clients never retry a rejected subscription,
	// but they do reconnect (and resubscribe) when told the server restarts.
	comeBack := func(what string, err error) {
		s.log.Warn("cable: "+what+" failed; the client will reconnect", "user_id", c.user.ID, "err", err)
		c.disconnect(frameServerRestart)
	}
	streams, convID, err := ch.join(ctx, c, params)
	switch {
	case core.Is(err, core.Unavailable):
		comeBack("authorizing a subscription", err)
		return
	case err != nil:
		reject("not allowed", err)
		return
	}
	sub := &subscription{conn: c, identifier: identifier, identJSON: identJSON, channel: ch, streams: streams, convID: convID}
	for i, st := range streams {
		if err := s.hub.acquire(ctx, st); err != nil {
			for _, taken := range streams[:i] {
				s.hub.release(taken, sub)
			}
			comeBack("subscribing to the broker", err)
			return
		}
		s.hub.attach(st, sub)
	}
	c.mu.Lock()
	if c.subs == nil { // the connection closed meanwhile
		c.mu.Unlock()
		for _, st := range streams {
			s.hub.release(st, sub)
		}
		return
	}
	c.subs[identifier] = sub
	c.mu.Unlock()
	c.send(frameConfirm(identJSON))
	if ch.joined != nil {
		if err := ch.joined(ctx, sub); err != nil {
			s.log.Warn("cable: after-subscribe step failed", "user_id", c.user.ID, "channel", name, "err", err)
		}
	}
}

func (s *Server) perform(ctx context.Context, c *conn, identifier string, raw json.RawMessage) {
	c.mu.Lock()
	sub := c.subs[identifier]
	c.mu.Unlock()
	if sub == nil {
		s.log.Debug("cable: message for an identifier not subscribed", "user_id", c.user.ID)
		return
	}
	var encoded string
	var data map[string]json.RawMessage
	if json.Unmarshal(raw, &encoded) != nil || json.Unmarshal([]byte(encoded), &data) != nil {
		s.log.Debug("cable: message data is not a JSON object string", "user_id", c.user.ID)
		return
	}
	action := "receive"
	if a, ok := data["action"]; ok {
		_ = json.Unmarshal(a, &action)
	}
	fn, ok := sub.channel.actions[action]
	if !ok {
		s.log.Debug("cable: unknown action ignored", "user_id", c.user.ID, "action", action)
		return
	}
	fn(ctx, sub, data)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
