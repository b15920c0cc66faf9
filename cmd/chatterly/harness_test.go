// The component tests build the whole server (Build, the same steps main
// runs) on the memory adapters and, when PostgreSQL and Redis are reachable,
// on the real ones (modes), and drive it over HTTP and WebSocket. This file
// is their shared harness: stacks, users, requests, WebSocket clients.
// The tests are grouped by feature, one prefix per group:
//
//	auth_      registration, login, lockout, tokens over HTTP
//	chat_      conversations, members, messages, reactions, events
//	calls_     call signaling, 1:1 and group, over REST and CallChannel
//	ws_        the Action Cable gateway: protocol, channels, instances, readers
//	users_     user reads and the user cache
//	limits_    abuse limits and caps
//	security_  attacks and authorization checks, one file per kind
//	ops_       what an operator sees: edges, faults, metrics, request ids, compose
//	config_    LoadConfig and the documents generated from its table
//
// export_test.go (package main) exposes the few internals they need.
package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
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
	// Every answer any test gets is held to docs/api/openapi.yaml.
	for _, p := range loadSpecs(s.t).checkResponse(method, path, resp.StatusCode, resp.Header, raw) {
		s.t.Errorf("openapi.yaml: %s", p)
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

// The subprotocols the stock @rails/actioncable client offers, in its order.
var cableProtocols = []string{"actioncable-v1-json", "actioncable-unsupported"}

// wsWait bounds every wait for a frame; wsQuiet is how long a socket must
// stay silent to count as "nothing arrived".
const (
	wsWait  = 5 * time.Second
	wsQuiet = 300 * time.Millisecond
)

// The exact frames the gateway sends outside subscriptions.
const (
	welcomeFrame      = `{"type":"welcome"}`
	unauthorizedFrame = `{"type":"disconnect","reason":"unauthorized","reconnect":false}`
	restartFrame      = `{"type":"disconnect","reason":"server_restart","reconnect":true}`
	tooSlowFrame      = `{"type":"disconnect","reason":"too_slow","reconnect":true}`
)

// Identifiers as the JS client builds them with JSON.stringify(params).
const (
	presenceIdent = `{"channel":"PresenceChannel"}`
	userIdent     = `{"channel":"UserChannel"}`
	callIdent     = `{"channel":"CallChannel"}`
)

func convIdent(cid int64) string {
	return `{"channel":"ConversationChannel","conversation_id":` + itoa(cid) + `}`
}

// wsFrame is one thing the reader saw: a message, or the error that ended the connection.
type wsFrame struct {
	kind int
	raw  []byte
	m    map[string]any // the frame decoded, when it is a JSON object
	err  error
	at   time.Time
}

func (f wsFrame) isPing() bool { return f.err == nil && f.m != nil && f.m["type"] == "ping" }

// wsClient is one Action Cable client over a real WebSocket. A goroutine
// reads every frame into a queue, so that waiting for a frame never breaks
// the connection; pause stops it reading, to play a client that does not.
type wsClient struct {
	t    *testing.T
	spec *apiSpecs
	conn *websocket.Conn
	resp *http.Response

	frames chan wsFrame
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	wmu sync.Mutex // one writer at a time

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool

	// backlog holds frames that expect passed over, oldest first.
	backlog []wsFrame
}

// cableURL is the /cable URL of s with token (none when empty).
func cableURL(s *stack, token string) string {
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/cable"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

// sameOrigin is the server's own scheme+host, as a browser on it would send.
func sameOrigin(s *stack) string { return s.srv.URL }

// cableDialer is a dialer offering the stock client's subprotocols.
func cableDialer() *websocket.Dialer {
	return &websocket.Dialer{Subprotocols: cableProtocols, HandshakeTimeout: wsWait}
}

// dialCable opens a WebSocket to u without failing the test, for handshake checks.
func dialCable(d *websocket.Dialer, u string, header http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wsWait)
	defer cancel()
	return d.DialContext(ctx, u, header)
}

// dial opens a WebSocket to s's /cable with token (none when empty). It does
// not read the welcome: cable does that.
func dial(t *testing.T, s *stack, token string, header http.Header) *wsClient {
	t.Helper()
	return dialWith(t, cableDialer(), s, token, header)
}

func dialWith(t *testing.T, d *websocket.Dialer, s *stack, token string, header http.Header) *wsClient {
	t.Helper()
	conn, resp, err := dialCable(d, cableURL(s, token), header)
	if err != nil && resp != nil {
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(resp.Body)
		require.NoError(t, err, "dial /cable: %d %s", resp.StatusCode, body)
	}
	require.NoError(t, err, "dial /cable")
	return newClient(t, conn, resp)
}

// newClient starts reading conn; the client is closed when t ends.
func newClient(t *testing.T, conn *websocket.Conn, resp *http.Response) *wsClient {
	c := &wsClient{t: t, spec: loadSpecs(t), conn: conn, resp: resp, frames: make(chan wsFrame, 1<<14), quit: make(chan struct{}), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.read()
	t.Cleanup(c.close)
	return c
}

// cable connects as a and checks that the first frame is the welcome.
func (s *stack) cable(t *testing.T, a account) *wsClient {
	t.Helper()
	c := dial(t, s, a.token, nil)
	c.expectWelcome(t)
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	defer close(c.frames)
	for {
		c.mu.Lock()
		for c.paused {
			c.cond.Wait()
		}
		c.mu.Unlock()
		kind, raw, err := c.conn.ReadMessage()
		f := wsFrame{kind: kind, raw: raw, err: err, at: time.Now()}
		if err == nil && kind == websocket.TextMessage {
			_ = json.Unmarshal(raw, &f.m)
			// Every frame any test reads is held to docs/api/asyncapi.yaml.
			for _, p := range c.spec.checkFrame(raw) {
				c.t.Errorf("asyncapi.yaml: %s", p)
			}
		}
		select {
		case c.frames <- f:
		case <-c.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// pause stops reading after the frame being read, if any; resume reads again.
func (c *wsClient) pause() {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
}

func (c *wsClient) resume() {
	c.mu.Lock()
	c.paused = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

// close says goodbye as a browser tab does and waits for the reader to stop.
// Closing twice is fine.
func (c *wsClient) close() {
	c.once.Do(func() {
		c.wmu.Lock()
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = c.conn.Close()
		close(c.quit)
		c.resume()
		<-c.done
	})
}

// send writes v as a JSON text frame.
func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	c.sendRaw(string(b))
}

// sendRaw writes s as a text frame, as is.
func (c *wsClient) sendRaw(s string) { c.write(websocket.TextMessage, []byte(s)) }

func (c *wsClient) write(kind int, b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wsWait))
	require.NoError(c.t, c.conn.WriteMessage(kind, b), "write a frame")
}

// pull returns the next frame off the wire, pings included, or ok=false
// when none came within d.
func (c *wsClient) pull(d time.Duration) (f wsFrame, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f, open := <-c.frames:
		if !open {
			return wsFrame{err: errors.New("client closed"), at: time.Now()}, true
		}
		return f, true
	case <-timer.C:
		return wsFrame{}, false
	}
}

// frame returns the oldest frame not consumed yet: first those that expect
// skipped over, then the wire's (pings included), or ok=false after d.
func (c *wsClient) frame(d time.Duration) (f wsFrame, ok bool) {
	if len(c.backlog) > 0 {
		f = c.backlog[0]
		c.backlog = c.backlog[1:]
		return f, true
	}
	return c.pull(d)
}

// nextFrame returns the next frame that is not a ping, failing the test when
// none comes within wsWait or the connection ends.
func (c *wsClient) nextFrame(t *testing.T) wsFrame {
	t.Helper()
	deadline := time.Now().Add(wsWait)
	for {
		f, ok := c.frame(time.Until(deadline))
		require.True(t, ok, "no frame within %s", wsWait)
		require.NoError(t, f.err, "the connection ended")
		require.Equal(t, websocket.TextMessage, f.kind, "the server sends text frames only: %q", f.raw)
		if !f.isPing() {
			return f
		}
	}
}

// next returns the next frame that is not a ping, decoded.
func (c *wsClient) next(t *testing.T) map[string]any {
	t.Helper()
	f := c.nextFrame(t)
	require.NotNil(t, f.m, "a frame is a JSON object: %s", f.raw)
	return f.m
}

// expect returns the first frame that matches pred, waiting up to wsWait.
// Frames it passes over stay queued for later reads; pings are dropped.
func (c *wsClient) expect(t *testing.T, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	for i, f := range c.backlog {
		if f.m != nil && pred(f.m) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f.m
		}
	}
	deadline := time.Now().Add(wsWait)
	for {
		f, ok := c.pull(time.Until(deadline))
		require.True(t, ok, "no matching frame within %s; queued: %v", wsWait, c.pending())
		require.NoError(t, f.err, "the connection ended; queued: %v", c.pending())
		if f.m != nil && pred(f.m) {
			return f.m
		}
		if !f.isPing() {
			c.backlog = append(c.backlog, f)
		}
	}
}

// pending lists the queued frames, for failure messages.
func (c *wsClient) pending() []string {
	out := make([]string, 0, len(c.backlog))
	for _, f := range c.backlog {
		out = append(out, string(f.raw))
	}
	return out
}

// discard forgets the frames expect passed over.
func (c *wsClient) discard() { c.backlog = nil }

// expectNone fails on any frame matching pred that is queued or arrives
// within d, and when the connection ends. Other frames stay queued.
func (c *wsClient) expectNone(t *testing.T, pred func(map[string]any) bool, d time.Duration) {
	t.Helper()
	for _, f := range c.backlog {
		if f.m != nil && pred(f.m) {
			t.Errorf("unexpected frame: %s", f.raw)
		}
	}
	deadline := time.Now().Add(d)
	for {
		f, ok := c.pull(time.Until(deadline))
		if !ok {
			return
		}
		if !assert.NoError(t, f.err, "the connection ended while it should stay open") {
			return
		}
		if f.m != nil && pred(f.m) {
			t.Errorf("unexpected frame: %s", f.raw)
		}
		if !f.isPing() {
			c.backlog = append(c.backlog, f)
		}
	}
}

// quiet checks that nothing but pings is queued or arrives for wsQuiet.
func (c *wsClient) quiet(t *testing.T, why string) {
	t.Helper()
	deadline := time.Now().Add(wsQuiet)
	for {
		f, ok := c.frame(time.Until(deadline))
		if !ok {
			return
		}
		if !assert.NoError(t, f.err, "%s: the connection ended", why) {
			return
		}
		if !f.isPing() {
			t.Errorf("%s: unexpected frame %s", why, f.raw)
		}
	}
}

// untilClosed reads until the connection ends and returns the frames that
// came before (pings left out) and the error that ended it.
func (c *wsClient) untilClosed(t *testing.T) (frames []string, err error) {
	t.Helper()
	deadline := time.Now().Add(wsWait)
	for {
		f, ok := c.frame(time.Until(deadline))
		if !ok {
			last := ""
			if len(frames) > 0 {
				last = frames[len(frames)-1]
			}
			require.Fail(t, "the connection is still open", "after %s; got %d frames, the last %.300s", wsWait, len(frames), last)
		}
		if f.err != nil {
			return frames, f.err
		}
		if !f.isPing() {
			frames = append(frames, string(f.raw))
		}
	}
}

// expectDisconnect checks that the next frame (pings aside) is want, exactly,
// and that the server then closes the connection without another word.
func (c *wsClient) expectDisconnect(t *testing.T, want string) {
	t.Helper()
	frames, err := c.untilClosed(t)
	if assert.NotEmpty(t, frames, "a disconnect frame before the close (%v)", err) {
		assert.JSONEq(t, want, frames[0])
		assert.Len(t, frames, 1, "nothing after the disconnect frame: %v", frames)
	}
	assertClosedByServer(t, err)
}

// assertClosedByServer checks that err ended a connection the server closed
// (a close frame or the TCP connection going away), not a client timeout.
func assertClosedByServer(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var ne net.Error
	if errors.As(err, &ne) {
		assert.False(t, ne.Timeout(), "closed by the server, not a timeout: %v", err)
	}
}

// expectWelcome checks that the very first frame is the welcome.
func (c *wsClient) expectWelcome(t *testing.T) {
	t.Helper()
	f, ok := c.frame(wsWait)
	require.True(t, ok, "no welcome within %s", wsWait)
	require.NoError(t, f.err, "the connection ended before the welcome")
	require.JSONEq(t, welcomeFrame, string(f.raw), "the first frame is the welcome")
}

// subscribe sends a subscribe command and returns the answer's type:
// confirm_subscription or reject_subscription.
func (c *wsClient) subscribe(t *testing.T, identifier string) string {
	t.Helper()
	c.send(map[string]any{"command": "subscribe", "identifier": identifier})
	f := c.expect(t, func(m map[string]any) bool {
		return m["identifier"] == identifier && (m["type"] == "confirm_subscription" || m["type"] == "reject_subscription")
	})
	assert.ElementsMatch(t, []string{"identifier", "type"}, keys(f), "subscription reply: %v", f)
	return f["type"].(string)
}

func (c *wsClient) mustConfirm(t *testing.T, identifier string) {
	t.Helper()
	require.Equal(t, "confirm_subscription", c.subscribe(t, identifier), "subscribe %s", identifier)
}

func (c *wsClient) mustReject(t *testing.T, identifier string) {
	t.Helper()
	require.Equal(t, "reject_subscription", c.subscribe(t, identifier), "subscribe %s", identifier)
}

func (c *wsClient) unsubscribe(identifier string) {
	c.t.Helper()
	c.send(map[string]any{"command": "unsubscribe", "identifier": identifier})
}

// perform runs a channel action; data is encoded to a JSON string as the client does.
func (c *wsClient) perform(identifier string, data map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(data)
	require.NoError(c.t, err)
	c.send(map[string]any{"command": "message", "identifier": identifier, "data": string(b)})
}

// onIdent matches message frames of the subscription identifier whose message satisfies pred.
func onIdent(identifier string, pred func(msg map[string]any) bool) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["identifier"] != identifier {
			return false
		}
		msg, ok := m["message"].(map[string]any)
		return ok && (pred == nil || pred(msg))
	}
}

// ofType matches messages of an event type.
func ofType(typ string) func(map[string]any) bool {
	return func(msg map[string]any) bool { return msg["type"] == typ }
}

// anyFrame matches every frame but pings.
func anyFrame(m map[string]any) bool { return m["type"] != "ping" }

// expectMessage waits for a message frame of identifier matching pred,
// checks the frame's shape and returns the message.
func (c *wsClient) expectMessage(t *testing.T, identifier string, pred func(msg map[string]any) bool) map[string]any {
	t.Helper()
	f := c.expect(t, onIdent(identifier, pred))
	assert.ElementsMatch(t, []string{"identifier", "message"}, keys(f), "message frame: %v", f)
	return f["message"].(map[string]any)
}

// expectEvent waits for the event typ on identifier.
func (c *wsClient) expectEvent(t *testing.T, identifier, typ string) map[string]any {
	t.Helper()
	return c.expectMessage(t, identifier, ofType(typ))
}

// presenceOf matches presence status events about user.
func presenceOf(user account, status string) func(map[string]any) bool {
	return func(msg map[string]any) bool {
		id, _ := msg["user_id"].(float64)
		return msg["status"] == status && int64(id) == user.id
	}
}

// statusEvent is the exact presence event for a user.
func statusEvent(userID int64, username, status string) string {
	b, _ := json.Marshal(map[string]any{"user_id": userID, "username": username, "status": status})
	return string(b)
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// username reads a's username over the API.
func (s *stack) username(t *testing.T, a account) string {
	t.Helper()
	r := s.do("GET", "/api/v1/users/"+itoa(a.id), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	return r.json(t)["username"].(string)
}

// login signs a in again and returns the new token.
func (s *stack) login(t *testing.T, a account) string {
	t.Helper()
	r := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": a.email, "password": a.password}})
	require.Equal(t, http.StatusOK, r.status, "login: %s", r.raw)
	return tokenOf(t, r)
}

// tokenFor forges a valid token of userID that expires at exp.
func tokenFor(userID int64, exp time.Time) string {
	now := time.Now().Unix()
	return forge(map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{
		"sub": itoa(userID), "jti": uuid.NewString(), "iat": now, "exp": exp.Unix(),
	}, sha256.New, testSecret)
}

// slowDialer dials with a tiny TCP receive buffer, so that a client that does
// not read fills the path to it after a few KiB instead of megabytes.
func slowDialer() *websocket.Dialer {
	d := cableDialer()
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	d.NetDialContext = nd.DialContext
	return d
}

// smallSendBuffers gives every accepted connection a tiny TCP send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// narrowed is s served again on a listener whose connections have tiny send
// buffers, so that a client that stops reading blocks the server's writes
// after a few KiB rather than after the megabytes loopback TCP would buffer.
func narrowed(t *testing.T, s *stack) *stack {
	t.Helper()
	srv := httptest.NewUnstartedServer(s.app.Handler)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	n := *s
	n.srv = srv
	return &n
}

// settledGoroutines waits until the goroutine count stops changing and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// waitGoroutines polls until at most baseline+margin goroutines run, and
// fails with their stacks otherwise.
func waitGoroutines(t *testing.T, baseline, margin int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	n := runtime.NumGoroutine()
	for n > baseline+margin && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > baseline+margin {
		var b bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines %s after every client closed, baseline %d (+%d allowed):\n%s", n, d, baseline, margin, b.String())
	}
}

// secConfig is m's configuration for the security suites. Rate limits are
// off: the suites register many users and fail logins on purpose, and what
// they test (authorization, lockout, equal answers) must hold without a
// limiter in front of it. Calls ring for an hour so that a suite's state
// does not change under it when a call would be missed.
func secConfig(t *testing.T, m mode) main.Config {
	t.Helper()
	cfg := m.config(t)
	cfg.RateLimitsOff = true
	cfg.CallRingTimeout = time.Hour
	return cfg
}
