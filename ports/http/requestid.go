package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	nethttp "net/http"
	"net/netip"

	"github.com/labstack/echo/v4"
)

// HeaderRequestID carries a request's id, both ways: a trusted proxy may
// send one, and every response names the id its log lines carry.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds an id taken from a proxy, so that a misbehaving
// one cannot make every log line of a request kilobytes long.
const maxRequestIDLen = 128

type requestIDKey struct{}

// RequestID returns the id of the request that ctx belongs to, or "" when
// it belongs to none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithRequestID wraps h so that a record logged with the context of a
// request (the ...Context methods of slog.Logger) carries a request_id
// attribute: the core services and adapters log with the context they are
// given, without knowing about HTTP. The attribute joins the record's own,
// so it lands inside any group opened with WithGroup.
func WithRequestID(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone() // the caller's record may share its attributes with other copies
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// requestID gives every request an id, in its context and in the response.
// The id a client sends is ignored unless it comes from a trusted proxy,
// since anyone could otherwise make their requests look like another's in
// the logs; a proxy's id is kept so that its logs and ours line up.
func requestID(trusted []netip.Prefix) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			id := r.Header.Get(HeaderRequestID)
			if !validRequestID(id) || !fromProxy(r, trusted) {
				id = newRequestID()
			}
			c.Response().Header().Set(HeaderRequestID, id)
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
			return next(c)
		}
	}
}

// fromProxy reports whether r's peer (not an address it names in a header)
// is in one of the trusted networks.
func fromProxy(r *nethttp.Request, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && contains(trusted, ap.Addr().Unmap())
}

// validRequestID admits what log pipelines can carry unquoted: printable
// ASCII without spaces, of bounded length.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24)
	return hex.EncodeToString(b[:])
}
