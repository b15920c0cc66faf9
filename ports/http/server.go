// Package http is the REST side of Chatterly: it decodes requests, calls the
// core services and encodes their results in the shapes of the wire contract.
package http

import (
	"context"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/users"
)

// MaxBodyBytes bounds every request body; larger ones get 413.
const MaxBodyBytes = 1 << 20

// Deps are what the REST API serves.
type Deps struct {
	Auth  *auth.Service
	Users *users.Service
	Chat  *chat.Service
	Calls *calls.Service
	// ICE configures GET /api/v1/ice_servers.
	ICE calls.ICE
	// Cable serves GET /cable (the WebSocket gateway), if set.
	Cable nethttp.Handler
	// Ready reports whether the service can take traffic (/readyz).
	Ready func(ctx context.Context) error
	// AllowedOrigins are the browser origins allowed by CORS (FRONTEND_URL).
	AllowedOrigins []string
	// Limits are the abuse limits; nil limits nothing.
	Limits *ratelimit.Policy
	// TrustedProxies are the networks of the reverse proxies in front of
	// the server. A request from one of them is taken to come from the
	// address it names in X-Forwarded-For; with none, from its own remote
	// address, since anyone can send the header.
	TrustedProxies []netip.Prefix
	// SharedAddresses are networks whose addresses may each stand for many
	// people (the web client's server, which calls /auth/* for every user
	// without forwarding their address; a NAT). A request from one, or from
	// a trusted proxy that did not forward a client address, is counted
	// under the shared rules rather than the per-address ones (see
	// ratelimit's package doc).
	SharedAddresses []netip.Prefix
	Log             *slog.Logger
	// Registry collects the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
}

// Server is the REST API as an http.Handler.
type Server struct {
	echo   *echo.Echo
	auth   *auth.Service
	users  *users.Service
	chat   *chat.Service
	calls  *calls.Service
	ice    calls.ICE
	ready  func(ctx context.Context) error
	limits *ratelimit.Policy
	// trusted and shared are Deps.TrustedProxies and Deps.SharedAddresses.
	trusted, shared []netip.Prefix
	log             *slog.Logger

	requests *prometheus.HistogramVec
}

// New builds the REST API.
func New(d Deps) *Server {
	s := &Server{echo: echo.New(), auth: d.Auth, users: d.Users, chat: d.Chat, calls: d.Calls, ice: d.ICE, ready: d.Ready, limits: d.Limits, log: d.Log,
		trusted: d.TrustedProxies, shared: d.SharedAddresses}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(d.TrustedProxies)

	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatterly_http_request_duration_seconds",
		Help:    "REST request latency by method, route pattern and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method", "route", "status"})
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(s.requests)

	// First, so that every line logged while serving a request, the access
	// line of observe included, carries its id.
	e.Use(requestID(d.TrustedProxies))
	e.Use(s.observe)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.ErrorContext(c.Request().Context(), "panic in handler", "path", c.Request().URL.Path, "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:     d.AllowedOrigins,
		AllowMethods:     []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"},
		AllowCredentials: true,
		ExposeHeaders:    []string{"Authorization", HeaderRequestID},
		MaxAge:           600,
	}))
	e.Use(middleware.BodyLimit(strconv.Itoa(MaxBodyBytes) + "B"))

	e.GET("/up", func(c echo.Context) error { return c.JSON(nethttp.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	s.routeDocs(e)
	if d.Cable != nil {
		e.GET("/cable", echo.WrapHandler(d.Cable))
	}

	a := e.Group("/auth")
	a.POST("/register", s.register)
	a.POST("/login", s.login)
	a.DELETE("/logout", s.logout, s.authenticate)

	v1 := e.Group("/api/v1", s.authenticate)
	v1.GET("/users", s.searchUsers)
	v1.GET("/users/me", s.me)
	v1.GET("/users/:id", s.showUser)
	v1.PATCH("/users/:id", s.updateUser)
	v1.PUT("/users/:id", s.updateUser)
	s.routeChat(v1)
	if d.Calls != nil {
		s.routeCalls(v1)
	}

	return s
}

// ipExtractor finds the client address that per-IP limits and logs use.
// echo's default reads X-Forwarded-For from anyone, which would let a client
// pick a fresh address for every request.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP:   net.IP(p.Addr().AsSlice()),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) { s.echo.ServeHTTP(w, r) }

// Echo exposes the router so that other ports (the WebSocket gateway) can mount on it.
func (s *Server) Echo() *echo.Echo { return s.echo }

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		// The reason stays in the log: it names hosts, ports, database
		// users and the like, and /readyz answers anyone.
		s.log.WarnContext(ctx, "not ready", "err", err)
		return c.JSON(nethttp.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
	}
	return c.JSON(nethttp.StatusOK, map[string]string{"status": "ready"})
}

// observe logs and measures every request. It logs the path without the
// query string, where tokens travel (?token= on /cable).
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // renders the response now so that its status is known
		}
		status := c.Response().Status
		route := c.Path()
		if status == nethttp.StatusNotFound && (route == "" || route == "/*") {
			route = "unmatched" // keeps scanners' random paths out of the metric labels
		}
		elapsed := time.Since(start)
		s.requests.WithLabelValues(methodLabel(c.Request().Method), route, strconv.Itoa(status)).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case c.Request().URL.Path == "/up" || c.Request().URL.Path == "/readyz" || c.Request().URL.Path == "/metrics":
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Float64("ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", c.RealIP()),
		}
		if u, ok := c.Get(ctxUser).(*users.User); ok {
			attrs = append(attrs, slog.Int64("user_id", u.ID))
		}
		s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// methodLabel is the method as a metric label. net/http accepts any token
// as a method, and every label value seen would stay a series for the life
// of the process, so methods nobody routes share one.
func methodLabel(m string) string {
	switch m {
	case nethttp.MethodGet, nethttp.MethodHead, nethttp.MethodPost, nethttp.MethodPut, nethttp.MethodPatch,
		nethttp.MethodDelete, nethttp.MethodOptions, nethttp.MethodConnect, nethttp.MethodTrace:
		return m
	}
	return "other"
}

const (
	ctxUser   = "chatterly.user"
	ctxClaims = "chatterly.claims"
)

// authenticate admits requests with a valid bearer token and remembers the user.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, claims, err := s.auth.Authenticate(c.Request().Context(), bearer(c.Request()))
		if err != nil {
			return err
		}
		c.Set(ctxUser, &u)
		c.Set(ctxClaims, claims)
		return next(c)
	}
}

func bearer(r *nethttp.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func currentUser(c echo.Context) *users.User { return c.Get(ctxUser).(*users.User) }

// online looks up presence for the users. Presence is cosmetic, so when it
// cannot be read the users show as offline rather than failing the request.
func (s *Server) online(c echo.Context, us ...users.User) map[int64]bool {
	m, err := s.users.Online(c.Request().Context(), us...)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "presence lookup failed; showing users offline", "err", err)
		return map[int64]bool{}
	}
	return m
}

// pathID parses an id path parameter. Anything that is not a positive
// integer below 2^53 cannot name a record, so it is NotFound like Rails' find.
func pathID(c echo.Context, name string) (int64, bool) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 || id >= 1<<53 {
		return 0, false
	}
	return id, true
}
