package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	httpport "github.com/chatterly/chatterly/ports/http"
)

// The peer's address decides whether X-Request-Id is kept, whatever
// X-Forwarded-For claims.
func TestRequestIDTrust(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name   string
		remote string
		xff    string
		kept   bool
	}{
		{"trusted IPv4 proxy", "10.1.2.3:443", "", true},
		{"trusted IPv6 proxy", "[fd00::1]:443", "", true},
		{"trusted proxy as an IPv4-mapped address", "[::ffff:10.1.2.3]:443", "", true},
		{"untrusted peer", "192.0.2.1:1234", "", false},
		{"untrusted peer naming a trusted proxy", "192.0.2.1:1234", "10.1.2.3", false},
		{"unparsable peer", "pipe", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httpport.New(httpport.Deps{TrustedProxies: trusted, Log: slog.New(slog.DiscardHandler)})
			req := httptest.NewRequest(nethttp.MethodGet, "/up", nil)
			req.RemoteAddr = tt.remote
			req.Header.Set(httpport.HeaderRequestID, "from-the-proxy")
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			got := rec.Header().Get(httpport.HeaderRequestID)
			if tt.kept {
				assert.Equal(t, "from-the-proxy", got)
			} else {
				assert.Regexp(t, `^[0-9a-f]{32}$`, got)
			}
		})
	}
}

// The id reaches lines logged with the request's context, through loggers
// derived with With and WithGroup, and no others.
func TestWithRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(httpport.WithRequestID(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var seen context.Context
	srv := httpport.New(httpport.Deps{Log: log, Ready: func(ctx context.Context) error { seen = ctx; return nil }})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(nethttp.MethodGet, "/readyz", nil))
	require.Equal(t, nethttp.StatusOK, rec.Code)
	id := rec.Header().Get(httpport.HeaderRequestID)
	require.NotEmpty(t, id)
	require.NotNil(t, seen)
	assert.Equal(t, id, httpport.RequestID(seen), "the handlers' context carries the id")

	buf.Reset()
	log.With("k", "v").InfoContext(seen, "with")
	log.WithGroup("g").InfoContext(seen, "group", "a", 1)
	log.InfoContext(context.Background(), "elsewhere")
	log.Info("no context")

	var lines []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 4)
	assert.Equal(t, id, lines[0]["request_id"])
	assert.Equal(t, "v", lines[0]["k"])
	assert.Equal(t, map[string]any{"a": float64(1), "request_id": id}, lines[1]["g"], "the id joins the open group")
	assert.NotContains(t, lines[2], "request_id")
	assert.NotContains(t, lines[3], "request_id")
}
