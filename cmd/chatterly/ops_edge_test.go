package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	main "github.com/chatterly/chatterly/cmd/chatterly"
)

func TestHTTPEdge(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")
		cases := []struct {
			name, method, path string
			body               any
			status             int
			want               string
		}{
			{"unknown route", "GET", "/nope", nil, 404, `{"error":"Not found"}`},
			{"unknown api route", "GET", "/api/v1/nope", nil, 401, ""},
			{"wrong method", "DELETE", "/auth/register", nil, 405, `{"error":"Method not allowed"}`},
			{"malformed json", "POST", "/auth/login", `{"user":`, 400, `{"error":"Malformed JSON in request body"}`},
			{"too large", "POST", "/auth/login", strings.Repeat(" ", 2<<20), 413, `{"error":"Request body too large"}`},
			{"no token", "GET", "/api/v1/users/me", nil, 401, `{"error":"You need to sign in or sign up before continuing."}`},
			{"liveness", "GET", "/up", nil, 200, `{"status":"ok"}`},
			{"readiness", "GET", "/readyz", nil, 200, `{"status":"ready"}`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do(tc.method, tc.path, "", tc.body)
				assert.Equal(t, tc.status, r.status, "%s", r.raw)
				if tc.want != "" {
					assert.JSONEq(t, tc.want, string(r.raw))
				}
				assert.Equal(t, "application/json", strings.Split(r.header.Get("Content-Type"), ";")[0])
			})
		}
		t.Run("unknown api route with a token", func(t *testing.T) {
			r := s.do("GET", "/api/v1/nope", a.token, nil)
			assert.Equal(t, http.StatusNotFound, r.status)
		})
		t.Run("CORS preflight", func(t *testing.T) {
			r := s.do("OPTIONS", "/auth/login", "", nil, "Origin", "http://localhost:3000",
				"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,authorization")
			assert.Less(t, r.status, 300)
			assert.Equal(t, "http://localhost:3000", r.header.Get("Access-Control-Allow-Origin"))
			assert.Equal(t, "true", r.header.Get("Access-Control-Allow-Credentials"))
			assert.Contains(t, strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization")
			assert.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "PATCH")
			r = s.do("OPTIONS", "/auth/login", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
			assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "foreign origins get no CORS grant")
		})
		t.Run("metrics", func(t *testing.T) {
			r := s.do("GET", "/metrics", "", nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.Contains(t, string(r.raw), `chatterly_http_request_duration_seconds_count{method="POST",route="/auth/register",status="201"}`)
			assert.Contains(t, string(r.raw), `route="unmatched"`)
			assert.Contains(t, string(r.raw), "go_goroutines")
		})
		t.Run("logs are JSON and carry no query strings", func(t *testing.T) {
			s.do("GET", "/api/v1/users?search=secret-term&token="+a.token, a.token, nil)
			found := false
			for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
				var entry map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &entry), "log line %q", line)
				if entry["msg"] == "request" && entry["path"] == "/api/v1/users" {
					found = true
					assert.EqualValues(t, a.id, entry["user_id"])
				}
			}
			assert.True(t, found)
			assert.NotContains(t, s.logs.String(), "secret-term")
			assert.NotContains(t, s.logs.String(), a.token)
		})
	})
}

// When the denylist cannot be checked, authenticated requests get 503, never
// 401: the web client signs the user out on any 401.
func TestDenylistDownIs503(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		dl := memory.NewDenylist()
		s := start(t, modes[0].config(t), func(a *main.Adapters) { a.Denylist = dl })
		a := s.register("alice")
		dl.SetUnavailable(true)
		r := s.do("GET", "/api/v1/users/me", a.token, nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.JSONEq(t, `{"error":"Service temporarily unavailable, please retry"}`, string(r.raw))
		dl.SetUnavailable(false)
		assert.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", a.token, nil).status)
	})
	t.Run("real", func(t *testing.T) {
		cfg := modes[1].config(t)
		target, err := url.Parse(redistest.URL(t))
		require.NoError(t, err)
		proxy := newProxy(t, target.Host)
		cfg.RedisURL = "redis://" + proxy.addr() + "/0"
		s := start(t, cfg)
		a := s.register("alice")
		require.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", a.token, nil).status)
		proxy.stop()
		deadline := time.Now().Add(10 * time.Second)
		r := s.do("GET", "/api/v1/users/me", a.token, nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.raw)
		assert.True(t, time.Now().Before(deadline), "fails fast")
		assert.Equal(t, http.StatusServiceUnavailable, s.do("GET", "/readyz", "", nil).status)
		assert.Equal(t, http.StatusOK, s.do("GET", "/up", "", nil).status, "liveness does not depend on Redis")
	})
}

// proxy forwards TCP to a target until stopped, to cut a service off mid-test.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// The binary's own serve path: config from the environment, listen, answer, shut down on signal.
func TestServeAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	env := map[string]string{"PORT": itoa(int64(port)), "LOG_LEVEL": "debug"}
	go func() {
		done <- main.Run(ctx, nil, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var sawMemoryWarning, sawSecretWarning bool
	for lines.Scan() {
		l := lines.Text()
		sawMemoryWarning = sawMemoryWarning || strings.Contains(l, "IN-MEMORY MODE")
		sawSecretWarning = sawSecretWarning || strings.Contains(l, "generated a random JWT secret")
		if strings.Contains(l, `"msg":"listening"`) {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	assert.True(t, sawMemoryWarning, "memory mode says so loudly")
	assert.True(t, sawSecretWarning)
	resp, err := http.Get("http://127.0.0.1:" + itoa(int64(port)) + "/up")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 0, main.Run(ctx, []string{"healthcheck"}, func(k string) string { return env[k] }, io.Discard, io.Discard))
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30 s")
	}
}
