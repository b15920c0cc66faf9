package ws

import (
	"context"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
)

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
	if s.gate.isDraining() {
		refuse(ws, frameServerRestart)
		return
	}
	// Before authenticating: in a storm, a refusal must cost less than
	// the connect it turns away.
	if !s.gate.rate.allow(time.Now()) {
		s.metrics.busy.Inc()
		refuse(ws, frameServerBusy)
		return
	}
	ext := ws.Subprotocol() == protocolExt
	u, claims, resumed, err := s.authenticate(r, ext)
	if err != nil {
		reply := replyTo(connecting, err)
		if reply != replyUnauthorized {
			s.log.WarnContext(r.Context(), "cable authentication failed", "err", err)
		}
		refuse(ws, reply.frame(nil, err))
		return
	}
	// net/http leaves its read/write timeouts on a hijacked connection;
	// a socket lives far longer, and writes set their own deadlines.
	_ = ws.NetConn().SetDeadline(time.Time{})
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	c := &conn{srv: s, ws: ws, raw: bw.Conn, id: newID(), user: u, claims: claims, subs: map[string]*subscription{}, done: make(chan struct{})}
	if ext {
		c.ext = &extState{}
	}
	switch s.gate.admit(c.user.ID, func() { s.hub.addConn(c) }) {
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
	welcome, restored := s.welcome(r.Context(), c, resumed)
	c.send(welcome)
	s.restored(r.Context(), restored)
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

// authenticate checks the token, then, for the extended protocol, takes
// the session that ?sid= names: when it is the same user's, the user is
// the session's (no database read). The token is checked first, so a
// revoked one resumes nothing; a session id is 128 random bits, sent only
// to its connection.
func (s *Server) authenticate(r *nethttp.Request, ext bool) (users.User, auth.Claims, *session, error) {
	q := r.URL.Query()
	claims, err := s.auth.Check(r.Context(), q.Get("token"))
	if err != nil {
		return users.User{}, claims, nil, err
	}
	if ext && q.Get("sid") != "" {
		if st := s.takeSession(r.Context(), q.Get("sid")); st != nil && st.UserID == claims.UserID {
			return st.user(), claims, st, nil
		}
	}
	u, err := s.auth.UserOf(r.Context(), claims)
	return u, claims, nil, err
}

// welcome is the frame a new connection gets: for the extended protocol,
// with a session id and the identifiers of the subscriptions that a
// resumed session brought back (returned, for restored to finish).
func (s *Server) welcome(ctx context.Context, c *conn, resumed *session) ([]byte, []*subscription) {
	if c.ext == nil || s.sessions == nil {
		return frameWelcome, nil
	}
	c.ext.sid = newID() + newID()
	c.ext.resumable.Store(true)
	if resumed == nil {
		return frameWelcomeExt(c.ext.sid, nil), nil
	}
	subs := s.restore(ctx, c, resumed)
	ids := make([]string, len(subs))
	for i, sub := range subs {
		ids[i] = sub.identifier
	}
	return frameWelcomeExt(c.ext.sid, ids), subs
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

// admission gates new connections: each user's cap on open sockets, and
// the drain that refuses every newcomer once Shutdown has begun.
type admission struct {
	max  int // sockets per user
	rate connectRate

	mu       sync.Mutex
	draining bool
	perUser  map[int64]int // open sockets by user id
}

type verdict int

const (
	admitted verdict = iota
	admitDraining
	admitTooMany
)

// admit counts a socket against user's cap and calls add, unless the user
// has as many sockets as allowed or the gate is draining; leave uncounts
// it. add runs under the gate's lock, so Shutdown, which drains before it
// walks the hub, either refuses the socket here or finds it there.
func (a *admission) admit(user int64, add func()) verdict {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.draining:
		return admitDraining
	case a.perUser[user] >= a.max:
		return admitTooMany
	}
	a.perUser[user]++
	add()
	return admitted
}

// connectRate is a token bucket of connects: perSecond tokens a second, up
// to burst at once. A zero perSecond allows every connect.
type connectRate struct {
	perSecond, burst float64

	mu     sync.Mutex
	tokens float64
	at     time.Time
}

func newConnectRate(perSecond, burst int) connectRate {
	return connectRate{perSecond: float64(perSecond), burst: float64(burst), tokens: float64(burst)}
}

func (r *connectRate) allow(now time.Time) bool {
	if r.perSecond <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() {
		r.tokens = min(r.burst, r.tokens+now.Sub(r.at).Seconds()*r.perSecond)
	}
	r.at = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

func (a *admission) leave(user int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perUser[user] <= 1 {
		delete(a.perUser, user)
	} else {
		a.perUser[user]--
	}
}

func (a *admission) drain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.draining = true
}

func (a *admission) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}
