package main_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// madeUpID is the shape of an id the server makes up.
var madeUpID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// logLines parses the JSON log lines in logs.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "log line %q", line)
		out = append(out, entry)
	}
	return out
}

// linesOf returns the log lines that name request id.
func linesOf(t *testing.T, s *stack, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logLines(t, s.logs.String()) {
		if l["request_id"] == id {
			out = append(out, l)
		}
	}
	return out
}

func messagesOf(lines []map[string]any) []any {
	var out []any
	for _, l := range lines {
		out = append(out, l["msg"])
	}
	return out
}

// Every line logged while serving a request names its id, the lines that
// core logs included, and the response names it too.
func TestRequestIDInEveryLogLine(t *testing.T) {
	l := memory.NewRateLimiter()
	s := start(t, baseConfig(), func(a *main.Adapters) { a.Limiter = l })
	alice, bob := s.register("alice"), s.register("bob")
	cid := num(t, s.createDirect(t, alice, bob)["id"])
	l.SetUnavailable(true) // sending fails open, with a warning from core/ratelimit
	defer l.SetUnavailable(false)

	before := len(s.logs.String())
	r := s.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "hello"})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	id := r.header.Get("X-Request-Id")
	require.Regexp(t, madeUpID, id)

	lines := logLines(t, s.logs.String()[before:])
	require.NotEmpty(t, lines)
	for _, line := range lines {
		assert.Equal(t, id, line["request_id"], "%v", line)
	}
	assert.Contains(t, messagesOf(lines), "rate limiter failed; allowing")
	assert.Contains(t, messagesOf(lines), "request")

	other := s.do("GET", "/up", "", nil).header.Get("X-Request-Id")
	assert.Regexp(t, madeUpID, other)
	assert.NotEqual(t, id, other, "every request has an id of its own")
}

// An id in the request is kept only from a trusted proxy, and only when it
// is one that log pipelines can carry; any other request gets a fresh one.
func TestRequestIDFromProxies(t *testing.T) {
	direct := start(t, baseConfig())
	cfg := baseConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	proxied := start(t, cfg)
	outsider := baseConfig()
	outsider.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	elsewhere := start(t, outsider)

	tests := []struct {
		name string
		s    *stack
		sent string
		kept bool
	}{
		{"none sent", direct, "", false},
		{"from a client, with no proxies trusted", direct, "client-chosen", false},
		{"from a client outside the trusted proxies", elsewhere, "client-chosen", false},
		{"from a trusted proxy", proxied, "proxy-7f3a:9b/01", true},
		{"128 characters from a trusted proxy", proxied, strings.Repeat("p", 128), true},
		{"129 characters from a trusted proxy", proxied, strings.Repeat("p", 129), false},
		{"with a space from a trusted proxy", proxied, "proxy id", false},
		{"with a tab from a trusted proxy", proxied, "proxy\tid", false},
		{"not ASCII from a trusted proxy", proxied, "pr\u00f8xy", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.sent != "" {
				headers = []string{"X-Request-Id", tt.sent}
			}
			r := tt.s.do("GET", "/api/v1/users/me", "", nil, headers...)
			require.Equal(t, http.StatusUnauthorized, r.status)
			id := r.header.Get("X-Request-Id")
			if tt.kept {
				assert.Equal(t, tt.sent, id)
			} else {
				assert.Regexp(t, madeUpID, id)
			}
			assert.Contains(t, messagesOf(linesOf(t, tt.s, id)), "request", "the access line names the id")
		})
	}
}

// The WebSocket upgrade is a request too: its lines name its id, and the
// line of the new connection ties the id to the connection's.
func TestRequestIDOfCable(t *testing.T) {
	s := start(t, baseConfig())
	alice := s.register("alice")
	s.cable(t, alice)

	var connected map[string]any
	for _, l := range logLines(t, s.logs.String()) {
		if l["msg"] == "cable connected" {
			connected = l
		}
	}
	require.NotNil(t, connected, "the connection is logged")
	id, _ := connected["request_id"].(string)
	require.Regexp(t, madeUpID, id)
	assert.NotEmpty(t, connected["conn"])
	require.Eventually(t, func() bool {
		for _, l := range linesOf(t, s, id) {
			if l["msg"] == "request" && l["path"] == "/cable" {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the upgrade's access line names the same id")
}

// Browsers let the web client read the id only when CORS exposes it.
func TestRequestIDExposedToBrowsers(t *testing.T) {
	s := start(t, baseConfig())
	r := s.do("GET", "/up", "", nil, "Origin", "http://localhost:3000")
	var exposed []string
	for _, v := range r.header.Values("Access-Control-Expose-Headers") {
		for h := range strings.SplitSeq(v, ",") {
			exposed = append(exposed, strings.TrimSpace(h))
		}
	}
	assert.Contains(t, exposed, "X-Request-Id")
}
