package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	main "github.com/chatterly/chatterly/cmd/chatterly"
	httpport "github.com/chatterly/chatterly/ports/http"
)

// testSecret signs every token in these tests, so that attack tokens can be forged with it.
var testSecret = []byte("component-test-secret-0123456789abcdef")

// stack is one running server under test.
type stack struct {
	t      *testing.T
	app    *main.App
	srv    *httptest.Server
	cfg    main.Config
	logs   *syncBuffer
	events *recorder
}

// syncBuffer collects the server's logs so tests can read them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type mode struct {
	name   string
	config func(t *testing.T) main.Config
}

// modes are the two graphs every component test runs against.
var modes = []mode{
	{"memory", func(*testing.T) main.Config { return baseConfig() }},
	{"real", func(t *testing.T) main.Config {
		c := baseConfig()
		c.DatabaseURL = pgtest.NewURL(t)
		// CI runs some suites again through PgBouncer in transaction
		// mode: migrations then go to the server directly.
		if pooled := pgtest.PooledURL(t, c.DatabaseURL); pooled != "" {
			c.DatabaseURL, c.DatabaseDirectURL = pooled, c.DatabaseURL
		}
		c.RedisURL = redistest.URL(t)
		// Every test's database restarts ids at 1: its own Redis prefix keeps
		// one test's presence and streams from reaching another's users.
		c.RedisPrefix = "chatterlytest:" + strings.ToLower(rand.Text()) + ":"
		return c
	}},
}

func baseConfig() main.Config {
	return main.Config{
		Env: "test", Port: 3001, JWTSecret: testSecret,
		AllowedOrigins: []string{"http://localhost:3000"},
		LogLevel:       slog.LevelDebug, BcryptCost: bcrypt.MinCost,
		UserCacheTTL: time.Second, // as LoadConfig: every suite runs with the cache
	}
}

// eachMode runs fn once per mode as subtests.
func eachMode(t *testing.T, fn func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { fn(t, m) })
	}
}

// start builds the server for cfg, its broker wrapped in a recorder (see
// stack.subscribe) and then changed by overrides, and serves it.
func start(t *testing.T, cfg main.Config, overrides ...func(*main.Adapters)) *stack {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(httpport.WithRequestID(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	events := &recorder{}
	app, err := main.Build(context.Background(), cfg, log, append([]func(*main.Adapters){events.wrap}, overrides...)...)
	require.NoError(t, err)
	s := &stack{t: t, app: app, srv: httptest.NewServer(app.Handler), cfg: cfg, logs: logs, events: events}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.app.Close()
		s.srv = nil
	}
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	raw    []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.raw, &m), "body: %s", r.raw)
	return m
}

func (r response) list(t *testing.T) []any {
	t.Helper()
	var l []any
	require.NoError(t, json.Unmarshal(r.raw, &l), "body: %s", r.raw)
	return l
}

// do sends a request; body may be nil, a string (sent as is) or a value to encode.
func (s *stack) do(method, path, token string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		require.NoError(s.t, err)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	require.NoError(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.srv.Client().Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		s.t.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, raw)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}
}

type account struct {
	id       int64
	email    string
	password string
	token    string
}

// register creates a user through the API and returns its token.
func (s *stack) register(username string) account {
	s.t.Helper()
	a := account{email: username + "@example.com", password: "password-" + username}
	r := s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
		"email": a.email, "password": a.password, "username": username, "display_name": strings.ToUpper(username[:1]) + username[1:],
	}})
	require.Equal(s.t, http.StatusCreated, r.status, "register: %s", r.raw)
	a.token = tokenOf(s.t, r)
	a.id = int64(r.json(s.t)["user"].(map[string]any)["id"].(float64))
	return a
}

func tokenOf(t *testing.T, r response) string {
	t.Helper()
	h := r.header.Get("Authorization")
	require.True(t, strings.HasPrefix(h, "Bearer "), "Authorization header: %q", h)
	return strings.TrimPrefix(h, "Bearer ")
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// metric reads a counter or gauge without labels from /metrics.
func (s *stack) metric(t *testing.T, name string) float64 {
	t.Helper()
	r := s.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	for line := range strings.SplitSeq(string(r.raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err, "%s", line)
			return f
		}
	}
	require.Failf(t, "metric missing", "%s is not in /metrics", name)
	return 0
}
