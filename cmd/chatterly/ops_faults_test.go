//go:build linux

package main_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// The fault suite: the server against Redis and PostgreSQL instances of
// its own, which the tests kill and start again, and the real binary
// stopped by SIGTERM mid-burst. docs/reliability.md reports what they show.

// recoveryBudget is how soon after a service is back the server must serve again.
const recoveryBudget = 5 * time.Second

// requireServices tells whether a missing service binary fails the test
// rather than skipping it (CI sets it).
func requireServices() bool { return os.Getenv(pgtest.EnvRequireServices) == "1" }

// findBinary returns the first of the candidates that exists (names are
// looked up in PATH, patterns globbed), or skips t, or fails it when
// services are required.
func findBinary(t *testing.T, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if !strings.Contains(c, "/") {
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
			continue
		}
		matches, _ := filepath.Glob(c)
		slices.Sort(matches)
		for i := len(matches) - 1; i >= 0; i-- { // the newest version first
			if fi, err := os.Stat(matches[i]); err == nil && fi.Mode().IsRegular() {
				return matches[i]
			}
		}
	}
	if requireServices() {
		t.Fatalf("none of %v found, and %s=1", candidates, pgtest.EnvRequireServices)
	}
	t.Skipf("none of %v found", candidates)
	return ""
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a server process a test starts, stops and starts again,
// always with the same command line; its output goes to a file that the
// test's log shows when it fails.
type process struct {
	t     *testing.T
	name  string
	path  string
	args  []string
	env   []string
	cred  *syscall.Credential
	ready func() error
	out   string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

func newProcess(t *testing.T, name, path string, args ...string) *process {
	p := &process{t: t, name: name, path: path, args: args, out: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		if p.running() {
			p.stop(syscall.SIGKILL)
		}
		if t.Failed() {
			if b, err := os.ReadFile(p.out); err == nil {
				t.Logf("%s output (last 4 KiB):\n%s", name, tail(b, 4<<10))
			}
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// start runs the process and waits until ready answers, for up to 20 s.
func (p *process) start() {
	p.t.Helper()
	require.False(p.t, p.running(), "%s already runs", p.name)
	out, err := os.OpenFile(p.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(p.t, err)
	defer out.Close() // the child holds a descriptor of its own

	p.cmd = exec.Command(p.path, p.args...) //nolint:gosec // the test's own service binaries and flags
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Env = append(os.Environ(), p.env...)
	// A process group of its own: a signal to the test's group (^C) does
	// not reach it, and the test decides when it stops.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	require.NoError(p.t, p.cmd.Start(), "start %s", p.name)
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		p.err = cmd.Wait()
		close(exited)
	}(p.cmd, p.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := p.ready()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited while starting: %v", p.name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after 20 s: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig and waits for the exit; after 15 s it kills.
func (p *process) stop(sig syscall.Signal) {
	p.t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s ignored %s for 15 s; killing it", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// privateRedis is a redis-server of the test's own, without persistence.
type privateRedis struct {
	*process
	addr string
}

func startRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin := findBinary(t, "redis-server")
	port := freePort(t)
	r := &privateRedis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	r.process = newProcess(t, "redis", bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--logfile", "")
	r.ready = func() error {
		reply, err := redisCommand(r.addr, "PING")
		if err == nil && reply != "+PONG" {
			err = fmt.Errorf("PING answered %q", reply)
		}
		return err
	}
	r.start()
	return r
}

func (r *privateRedis) url() string { return "redis://" + r.addr + "/0" }

// redisCommand sends one command and returns the first line of the reply.
func redisCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// privatePostgres is a PostgreSQL cluster of the test's own, tuned for
// speed over durability.
type privatePostgres struct {
	*process
	port int
}

func startPostgres(t *testing.T) *privatePostgres {
	t.Helper()
	initdb := findBinary(t, "initdb", "/usr/lib/postgresql/*/bin/initdb")
	// The server of the same installation (PATH may hold symlinks to it).
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	server := filepath.Join(filepath.Dir(initdb), "postgres")
	// PostgreSQL refuses to run as root: as root, run it as postgres in a
	// directory of its own (t.TempDir's parent is closed to other users).
	dir, err := os.MkdirTemp("", "chatterly-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			if requireServices() {
				t.Fatalf("running as root and no postgres user to run PostgreSQL as: %v", err)
			}
			t.Skipf("running as root and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	data := filepath.Join(dir, "data")
	init := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions") //nolint:gosec // initdb found by findBinary
	init.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := init.CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)

	p := &privatePostgres{port: freePort(t)}
	p.process = newProcess(t, "postgres", server, "-D", data, "-p", strconv.Itoa(p.port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=50")
	p.cred = cred
	p.ready = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.url("postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.url("postgres"))
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "CREATE DATABASE chatterly")
	require.NoError(t, err)
	return p
}

func (p *privatePostgres) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// timedDo is s.do that also returns how long the answer took.
func (s *stack) timedDo(method, path, token string, body any) (response, time.Duration) {
	s.t.Helper()
	started := time.Now()
	r := s.do(method, path, token, body)
	return r, time.Since(started)
}

// waitStatus polls path until it answers want, and returns how long that took.
func (s *stack) waitStatus(t *testing.T, path string, want int, within time.Duration) time.Duration {
	t.Helper()
	started := time.Now()
	for {
		r := s.do("GET", path, "", nil)
		if r.status == want {
			return time.Since(started)
		}
		require.Less(t, time.Since(started), within, "%s still answers %d (%s), want %d", path, r.status, r.raw, want)
		time.Sleep(50 * time.Millisecond)
	}
}

func assertUnavailable(t *testing.T, r response, took time.Duration, what string) {
	t.Helper()
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s: %s", what, r.raw)
	if r.status == http.StatusServiceUnavailable {
		assert.NotEmpty(t, r.json(t)["error"], "%s: a JSON error", what)
	}
	// The clients' own timeouts are 10 s and more; a refused connection
	// costs milliseconds, a silent one the adapters' 2 s bounds.
	assert.Less(t, took, 3*time.Second, "%s fails fast", what)
}

// messageIDs are the ids of a conversation's whole history, as its member a reads it.
func (s *stack) messageIDs(t *testing.T, a account, cid int64) []int64 {
	t.Helper()
	var ids []int64
	for _, m := range s.allHistory(t, a, cid, 100) {
		ids = append(ids, num(t, m["id"]))
	}
	return ids
}

// untilDelivered posts messages from a to cid, one every 250 ms, until one
// answers 201 and reaches c, and returns how long that took. Until the
// broker has subscribed again, events are lost: hence the retries.
func (s *stack) untilDelivered(t *testing.T, a account, cid int64, c *wsClient, within time.Duration) (took time.Duration, sent []int64) {
	t.Helper()
	started := time.Now()
	ident := convIdent(cid)
	for i := 0; ; i++ {
		require.Less(t, time.Since(started), within, "no event reached the socket within %s; sent %v", within, sent)
		r := s.do("POST", messagesPath(cid), a.token, map[string]any{"content": fmt.Sprintf("after the fault %d", i)})
		if r.status != http.StatusCreated {
			require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.raw)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		id := num(t, dataOf(t, r)["id"])
		sent = append(sent, id)
		wait := time.Now().Add(250 * time.Millisecond)
		for time.Now().Before(wait) {
			f, ok := c.pull(time.Until(wait))
			if !ok {
				break
			}
			require.NoError(t, f.err, "the socket closed")
			if f.m != nil && onIdent(ident, func(msg map[string]any) bool {
				m, _ := msg["message"].(map[string]any)
				return msg["type"] == "new_message" && m != nil && num(t, m["id"]) == id
			})(f.m) {
				return time.Since(started), sent
			}
		}
	}
}

// pointedAt lets the harness's helpers (stack.do, stack.cable) talk to a
// server at base that is not an httptest.Server: a started, unused one
// lends them its client.
func pointedAt(t *testing.T, base string) *httptest.Server {
	lender := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(lender.Close)
	lender.URL = base
	// A hung server fails the test instead of hanging it.
	lender.Client().Timeout = 15 * time.Second
	return lender
}

// signalTree signals a process and its children: PostgreSQL's backends
// are sessions of their own, out of reach of a signal to the group.
func signalTree(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, p := range procs {
		child, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		_, rest, _ := strings.Cut(string(stat[strings.LastIndexByte(string(stat), ')')+1:]), " ")
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			_ = syscall.Kill(child, sig)
		}
	}
	require.NoError(t, syscall.Kill(pid, sig))
}

// durableConfig is the real mode's configuration with the given services.
func durableConfig(databaseURL, redisURL string) main.Config {
	c := baseConfig()
	c.DatabaseURL, c.RedisURL = databaseURL, redisURL
	c.RedisPrefix = "chatterlyfault:" + strings.ToLower(rand.Text()) + ":"
	return c
}

func TestFaultRedisRestart(t *testing.T) {
	rds := startRedis(t)
	cfg := durableConfig(pgtest.NewURL(t), rds.url())
	cfg.AuthOutageGrace = time.Minute // production's default
	s := start(t, cfg)
	alice, bob := s.register("alice"), s.register("bob")
	cid := num(t, s.createDirect(t, alice, bob)["id"])
	aliceWS, bobWS := s.cable(t, alice), s.cable(t, bob)
	aliceWS.mustConfirm(t, convIdent(cid))
	bobWS.mustConfirm(t, convIdent(cid))
	first := num(t, s.send(t, alice, cid, "before")["id"])
	bobWS.expectEvent(t, convIdent(cid), "new_message")
	require.Zero(t, s.metric(t, "chatterly_publish_failures_total"))

	t.Run("publishing refused, the rest of Redis up", func(t *testing.T) {
		// The server refuses PUBLISH to its own user: every other command works.
		reply, err := redisCommand(rds.addr, "ACL", "SETUSER", "default", "-publish")
		require.NoError(t, err)
		require.Equal(t, "+OK", reply)
		r := s.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "while publishing fails"})
		require.Equal(t, http.StatusCreated, r.status, "the write stands: %s", r.raw)
		lost := num(t, dataOf(t, r)["id"])
		bobWS.expectNone(t, onIdent(convIdent(cid), ofType("new_message")), wsQuiet)
		assert.Positive(t, s.metric(t, "chatterly_publish_failures_total"), "the failed publishes are counted")
		assert.Contains(t, s.logs.String(), "publishing events is failing")
		reply, err = redisCommand(rds.addr, "ACL", "SETUSER", "default", "+publish")
		require.NoError(t, err)
		require.Equal(t, "+OK", reply)
		s.send(t, alice, cid, "publishing again")
		bobWS.expectEvent(t, convIdent(cid), "new_message")
		assert.Contains(t, s.logs.String(), "publishing events recovered")
		assert.Contains(t, s.messageIDs(t, bob, cid), lost, "the message is stored; the client catches up over REST")
	})

	rds.stop(syscall.SIGTERM)
	down := time.Now()
	t.Run("during the outage", func(t *testing.T) {
		took := s.waitStatus(t, "/readyz", http.StatusServiceUnavailable, 3*time.Second)
		t.Logf("/readyz answered 503 %s after Redis stopped", took)

		// Signed-in clients keep writing: their tokens were cleared by the
		// denylist moments ago (AUTH_OUTAGE_GRACE), and the writes are stored.
		r, took := s.timedDo("POST", messagesPath(cid), alice.token, map[string]any{"content": "during the outage"})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
		during := num(t, dataOf(t, r)["id"])
		t.Logf("a write with a recently cleared token answered 201 in %s", took)
		assert.Contains(t, s.messageIDs(t, bob, cid), during, "stored")

		// A write that needs no token still works: registering.
		carol := s.register("carol")
		// A token the denylist never cleared cannot be checked: 503, never
		// 401, which would sign the user out.
		r, took = s.timedDo("GET", "/api/v1/users/me", carol.token, nil)
		assertUnavailable(t, r, took, "an authenticated read with a token not cleared lately")
		t.Logf("a token not cleared lately answered 503 in %s", took)
		// Login's rate limits fail closed (core/ratelimit): without them,
		// an outage would open a window for password guessing.
		r, took = s.timedDo("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": carol.email, "password": carol.password}})
		assertUnavailable(t, r, took, "login")

		// Events published now fail and are counted.
		before := s.metric(t, "chatterly_publish_failures_total")
		aliceWS.perform(convIdent(cid), map[string]any{"action": "typing"})
		require.Eventually(t, func() bool { return s.metric(t, "chatterly_publish_failures_total") > before },
			5*time.Second, 50*time.Millisecond, "a failed publish is counted")

		// New sockets without a recently cleared token are told to come
		// back later; open ones stay open.
		dial(t, s, carol.token, nil).expectDisconnect(t, restartFrame)
		bobWS.expectNone(t, func(map[string]any) bool { return false }, wsQuiet)
	})

	time.Sleep(time.Until(down.Add(2 * time.Second))) // an outage of about 2 s
	rds.start()
	t.Logf("Redis down for %s", time.Since(down).Round(10*time.Millisecond))
	t.Run("after Redis is back", func(t *testing.T) {
		took := s.waitStatus(t, "/readyz", http.StatusOK, recoveryBudget)
		t.Logf("/readyz answered 200 %s after Redis restarted", took)
		took, sent := s.untilDelivered(t, alice, cid, bobWS, recoveryBudget)
		t.Logf("WebSocket event delivered %s after Redis restarted (%d sends)", took, len(sent))
		aliceWS.expectEvent(t, convIdent(cid), "new_message") // every subscriber, not just one
		ids := s.messageIDs(t, bob, cid)
		assert.Contains(t, ids, first)
		for _, id := range sent {
			assert.Contains(t, ids, id)
		}
		// A socket opened now works end to end.
		c := s.cable(t, bob)
		c.mustConfirm(t, convIdent(cid))
		s.send(t, alice, cid, "to the new socket")
		c.expectEvent(t, convIdent(cid), "new_message")
	})

	// Redis alive but silent (stopped, or a network black hole): every call
	// is bounded by the adapter's timeout instead of the client's patience.
	t.Run("unresponsive", func(t *testing.T) {
		dave := s.register("dave") // a token the denylist has not cleared
		require.NoError(t, syscall.Kill(rds.cmd.Process.Pid, syscall.SIGSTOP))
		frozen := time.Now()
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(rds.cmd.Process.Pid, syscall.SIGCONT)
			}
		}
		defer resume()
		r, took := s.timedDo("GET", "/api/v1/users/me", dave.token, nil)
		assertUnavailable(t, r, took, "an authenticated read")
		t.Logf("authenticated request answered 503 in %s with Redis unresponsive", took)
		s.waitStatus(t, "/readyz", http.StatusServiceUnavailable, 3*time.Second)
		resume()
		t.Logf("Redis unresponsive for %s", time.Since(frozen).Round(10*time.Millisecond))
		took = s.waitStatus(t, "/readyz", http.StatusOK, recoveryBudget)
		t.Logf("/readyz answered 200 %s after Redis resumed", took)
		took, _ = s.untilDelivered(t, alice, cid, bobWS, recoveryBudget)
		t.Logf("WebSocket event delivered %s after Redis resumed", took)
	})
}

func TestFaultPostgresRestart(t *testing.T) {
	pg := startPostgres(t)
	s := start(t, durableConfig(pg.url("chatterly"), redistest.URL(t)))
	alice, bob := s.register("alice"), s.register("bob")
	carol := s.register("carol") // her token is used first during the outage
	cid := num(t, s.createDirect(t, alice, bob)["id"])
	bobWS := s.cable(t, bob)
	bobWS.mustConfirm(t, convIdent(cid))
	first := num(t, s.send(t, alice, cid, "before")["id"])
	bobWS.expectEvent(t, convIdent(cid), "new_message")

	pg.stop(syscall.SIGINT) // fast shutdown: sessions are ended, as in a restart
	down := time.Now()
	t.Run("during the outage", func(t *testing.T) {
		took := s.waitStatus(t, "/readyz", http.StatusServiceUnavailable, 3*time.Second)
		t.Logf("/readyz answered 503 %s after PostgreSQL stopped", took)
		var slowest time.Duration
		for _, req := range []struct {
			method, path, token string
			body                any
		}{
			{"POST", messagesPath(cid), alice.token, map[string]any{"content": "refused"}},
			{"GET", messagesPath(cid), bob.token, nil},
			{"GET", conversationsPath, alice.token, nil},
			// Not /users/me: alice's user is in the user cache for 1 s, and
			// /me needs nothing else, so it may well answer 200.
			{"GET", "/api/v1/users?search=bob", bob.token, nil},
			{"POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": alice.email, "password": alice.password}}},
		} {
			r, took := s.timedDo(req.method, req.path, req.token, req.body)
			assertUnavailable(t, r, took, req.method+" "+req.path)
			slowest = max(slowest, took)
		}
		t.Logf("requests answered 503 within %s", slowest)
		// A new socket is told to come back later: at once when its user
		// cannot be read, or, when the user cache still knows it (bob's
		// last request was a moment ago), at its first subscription,
		// which a client would not retry if it were rejected.
		dial(t, s, carol.token, nil).expectDisconnect(t, restartFrame)
		late := dial(t, s, bob.token, nil)
		if f, ok := late.frame(wsWait); ok && f.err == nil && string(f.raw) != restartFrame {
			require.JSONEq(t, welcomeFrame, string(f.raw))
			late.send(map[string]any{"command": "subscribe", "identifier": convIdent(cid)})
			late.expectDisconnect(t, restartFrame)
			t.Log("a socket whose user was cached: welcomed, then told to reconnect at its subscription")
		}
		bobWS.expectNone(t, func(map[string]any) bool { return false }, wsQuiet)
	})

	time.Sleep(time.Until(down.Add(2 * time.Second)))
	pg.start()
	t.Logf("PostgreSQL down for %s", time.Since(down).Round(10*time.Millisecond))
	t.Run("after PostgreSQL is back", func(t *testing.T) {
		took := s.waitStatus(t, "/readyz", http.StatusOK, recoveryBudget)
		t.Logf("/readyz answered 200 %s after PostgreSQL restarted", took)
		took, sent := s.untilDelivered(t, alice, cid, bobWS, recoveryBudget)
		t.Logf("writes and events back %s after PostgreSQL restarted", took)
		ids := s.messageIDs(t, bob, cid)
		assert.Contains(t, ids, first)
		assert.Contains(t, ids, sent[len(sent)-1])
		s.cable(t, alice).mustConfirm(t, convIdent(cid))
	})
}

// A PostgreSQL that hangs instead of refusing (stopped, or a network black
// hole) is noticed by no error: the production server's request deadline
// (newHTTPServer) turns the wait into a 503.
func TestFaultPostgresUnresponsive(t *testing.T) {
	pg := startPostgres(t)
	s := start(t, durableConfig(pg.url("chatterly"), redistest.URL(t)))
	lim := main.DefaultHTTPLimits
	lim.RequestTimeout = 2 * time.Second
	p := *s
	p.srv = pointedAt(t, "http://"+serveLimited(t, s, lim))
	alice, bob := p.register("alice"), p.register("bob")
	cid := num(t, p.createDirect(t, alice, bob)["id"])
	bobWS := p.cable(t, bob)
	bobWS.mustConfirm(t, convIdent(cid))

	signalTree(t, pg.cmd.Process.Pid, syscall.SIGSTOP)
	frozen := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			signalTree(t, pg.cmd.Process.Pid, syscall.SIGCONT)
		}
	}
	defer resume()
	r, took := p.timedDo("POST", messagesPath(cid), alice.token, map[string]any{"content": "into the void"})
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.raw)
	assert.Less(t, took, lim.RequestTimeout+time.Second, "answered at the request deadline")
	t.Logf("a write answered %d after %s with PostgreSQL unresponsive", r.status, took)
	p.waitStatus(t, "/readyz", http.StatusServiceUnavailable, 5*time.Second)
	resume()
	t.Logf("PostgreSQL unresponsive for %s", time.Since(frozen).Round(10*time.Millisecond))
	took = p.waitStatus(t, "/readyz", http.StatusOK, recoveryBudget)
	t.Logf("/readyz answered 200 %s after PostgreSQL resumed", took)
	took, _ = p.untilDelivered(t, alice, cid, bobWS, recoveryBudget)
	t.Logf("writes and events back %s after PostgreSQL resumed", took)
}

// sentMessage is one message that the server acknowledged with 201.
type sentMessage struct {
	id      int64
	content string
}

func TestFaultSIGTERMDuringSendBurst(t *testing.T) {
	goBin := findBinary(t, "go", filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "/usr/local/go/bin/go")
	dbURL := pgtest.NewURL(t)
	rds := startRedis(t)

	bin := filepath.Join(t.TempDir(), "chatterly")
	build := exec.Command(goBin, "build", "-o", bin, ".") //nolint:gosec // the go tool found by findBinary
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	srv := newProcess(t, "chatterly", bin)
	srv.env = []string{
		"PORT=" + strconv.Itoa(port), "CHATTERLY_ENV=test", "LOG_LEVEL=info",
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + rds.url(), "DEVISE_JWT_SECRET_KEY=" + string(testSecret),
	}
	srv.ready = func() error {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		_ = r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", r.StatusCode)
		}
		return nil
	}
	srv.start()

	s := &stack{t: t, srv: pointedAt(t, base), logs: &syncBuffer{}}
	people := []account{s.register("alice"), s.register("bob"), s.register("carol"), s.register("dave")}
	cid := num(t, s.createGroup(t, people[0], "burst", people[1:]...)["id"])
	var sockets []*wsClient
	for _, a := range people {
		for range 2 {
			c := s.cable(t, a)
			c.mustConfirm(t, convIdent(cid))
			sockets = append(sockets, c)
		}
	}

	var (
		mu       sync.Mutex
		acked    []sentMessage
		statuses = map[string]int{}
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second}
	for g, a := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				select {
				case <-stop:
					return
				default:
				}
				content := fmt.Sprintf("burst %d-%d", g, i)
				body, _ := json.Marshal(map[string]any{"content": content})
				req, _ := http.NewRequest("POST", base+messagesPath(cid), strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+a.token)
				resp, err := client.Do(req)
				if err != nil {
					// Refused once the listener is gone; before that, a request
					// sent on a keep-alive connection the server was closing as
					// idle fails unanswered (and unprocessed).
					refused := errors.Is(err, syscall.ECONNREFUSED)
					mu.Lock()
					if refused {
						statuses["refused"]++
					} else {
						statuses["unanswered"]++
					}
					mu.Unlock()
					if refused {
						return
					}
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				statuses[strconv.Itoa(resp.StatusCode)]++
				if resp.StatusCode == http.StatusCreated {
					var env struct {
						Data struct {
							ID      int64  `json:"id"`
							Content string `json:"content"`
						} `json:"data"`
					}
					if json.Unmarshal(raw, &env) == nil {
						acked = append(acked, sentMessage{env.Data.ID, env.Data.Content})
					} else {
						statuses["201 unreadable"]++
					}
				}
				mu.Unlock()
				if resp.StatusCode == http.StatusTooManyRequests {
					time.Sleep(50 * time.Millisecond) // a rate limit: keep the burst going, gently
				}
			}
		}()
	}
	// SIGTERM once the burst is well under way.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40
	}, 20*time.Second, 10*time.Millisecond, "the burst got going")
	signalled := time.Now()
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))

	select {
	case <-srv.exited:
	case <-time.After(35 * time.Second):
		t.Fatal("the server did not exit within 35 s of SIGTERM")
	}
	exitAfter := time.Since(signalled)
	close(stop)
	wg.Wait()
	t.Logf("exited %s after SIGTERM (status %v); requests: %v; %d acknowledged", exitAfter.Round(time.Millisecond), srv.err, statuses, len(acked))
	assert.NoError(t, srv.err, "a clean exit")
	assert.Less(t, exitAfter, 30*time.Second, "exits within 30 s")

	// Every socket was told to reconnect, and then closed.
	for i, c := range sockets {
		frames, err := c.untilClosed(t)
		if assert.NotEmpty(t, frames, "socket %d: frames before the close (%v)", i, err) {
			assert.JSONEq(t, restartFrame, frames[len(frames)-1], "socket %d: the last frame", i)
		}
		assertClosedByServer(t, err)
	}

	// Every acknowledged message is in the database, as acknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	rows, err := db.Query(ctx, "SELECT id, content FROM messages WHERE conversation_id = $1", cid)
	require.NoError(t, err)
	stored := map[int64]string{}
	for rows.Next() {
		var id int64
		var content string
		require.NoError(t, rows.Scan(&id, &content))
		stored[id] = content
	}
	require.NoError(t, rows.Err())
	missing := 0
	for _, m := range acked {
		if got, ok := stored[m.id]; !ok || got != m.content {
			missing++
			t.Errorf("message %d (%q) answered 201 but is stored as %q (present: %v)", m.id, m.content, got, ok)
		}
	}
	t.Logf("%d messages acknowledged, %d stored, %d missing", len(acked), len(stored), missing)
}
