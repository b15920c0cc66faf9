package main_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/ports/ws"
)

// Resource caps: each is hit through the real port and answers clearly.
// Covered elsewhere: inbound frames over 64 KiB (TestWSSubscribe's "frame
// size limit": close 1009), JSON bodies over 1 MiB (the "huge body" rows of
// the bad-input tables: 413) and history limits (TestChatFlow's "limit
// clamping": over 100 is 100, zero or negative is 1).

const tooManyConnectionsFrame = `{"type":"disconnect","reason":"too_many_connections","reconnect":true}`

func TestCapConnectionsPerUser(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		alice, bob := s.register("alice"), s.register("bob")
		open := make([]*wsClient, 0, ws.DefaultMaxConnsPerUser)
		for range ws.DefaultMaxConnsPerUser {
			open = append(open, s.cable(t, alice))
		}

		// The one over the cap is upgraded, told why, and closed: no welcome.
		dial(t, s, alice.token, nil).expectDisconnect(t, tooManyConnectionsFrame)
		assert.Contains(t, s.logs.String(), "too many connections for one user")

		// The cap is per user, and the sockets already open keep working.
		s.cable(t, bob).mustConfirm(t, userIdent)
		open[0].mustConfirm(t, userIdent)

		// Closing one frees its place once the server has seen it go.
		open[len(open)-1].close()
		deadline := time.Now().Add(wsWait)
		for {
			c := dial(t, s, alice.token, nil)
			f := c.nextFrame(t)
			if string(f.raw) == welcomeFrame {
				c.mustConfirm(t, userIdent)
				break
			}
			require.JSONEq(t, tooManyConnectionsFrame, string(f.raw))
			require.True(t, time.Now().Before(deadline), "the closed socket's place was not freed within %s", wsWait)
			c.close()
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestCapSubscriptionsPerConnection(t *testing.T) {
	s := start(t, baseConfig())
	alice := s.register("alice")
	c := s.cable(t, alice)
	// Distinct identifiers of one channel: each is a subscription of its own.
	ident := func(i int) string { return fmt.Sprintf(`{"channel":"UserChannel","n":%d}`, i) }
	for i := range ws.DefaultMaxSubscriptionsPerConn {
		c.mustConfirm(t, ident(i))
	}
	c.mustReject(t, ident(ws.DefaultMaxSubscriptionsPerConn))
	assert.Contains(t, s.logs.String(), "too many subscriptions on the connection")

	// The connection stays usable, and ending one makes room for another.
	c.unsubscribe(ident(0))
	c.mustConfirm(t, ident(ws.DefaultMaxSubscriptionsPerConn))
	c.mustReject(t, ident(ws.DefaultMaxSubscriptionsPerConn+1))
}

func TestCapSearchResults(t *testing.T) {
	s := start(t, baseConfig())
	var alice account
	for i := range 25 {
		a := s.register(fmt.Sprintf("capper%02d", i))
		if i == 0 {
			alice = a
		}
	}
	r := s.do("GET", "/api/v1/users?search=capper", alice.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Len(t, r.list(t), 20, "search results are capped at 20")
}

// serveLimited serves s's handler through the production server
// constructor with lim, on a loopback port, until the test ends.
func serveLimited(t *testing.T, s *stack, lim main.HTTPLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := main.NewHTTPServer(ln.Addr().String(), s.app.Handler, lim, slog.New(slog.NewJSONHandler(s.logs, nil)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestCapHTTPServerDefaults(t *testing.T) {
	d := main.DefaultHTTPLimits
	assert.Equal(t, 5*time.Second, d.ReadHeaderTimeout)
	assert.Equal(t, 16<<10, d.MaxHeaderBytes)
	for name, v := range map[string]time.Duration{"read": d.ReadTimeout, "write": d.WriteTimeout, "idle": d.IdleTimeout} {
		assert.Positive(t, v, "%s timeout set", name)
	}
}

// A client that trickles its headers (slowloris) is cut off once
// ReadHeaderTimeout has passed, however steadily it trickles.
func TestCapSlowHeaders(t *testing.T) {
	s := start(t, baseConfig())
	lim := main.DefaultHTTPLimits
	lim.ReadHeaderTimeout = 500 * time.Millisecond
	addr := serveLimited(t, s, lim)

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	started := time.Now()
	_, err = io.WriteString(conn, "GET /up HTTP/1.1\r\nHost: chatterly\r\n")
	require.NoError(t, err)
	// One header byte every 50 ms: the connection is never idle.
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}()
	var cutAfter time.Duration
trickle:
	for i := 0; ; i++ {
		select {
		case err := <-closed:
			cutAfter = time.Since(started)
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "closed by the server: %v", err)
			break trickle
		case <-time.After(50 * time.Millisecond):
		}
		require.Less(t, time.Since(started), 5*time.Second, "the slow client was never cut off")
		if _, err := io.WriteString(conn, string("X-Slow-"[i%7])); err != nil {
			cutAfter = time.Since(started)
			break
		}
	}
	t.Logf("slow client cut off after %s", cutAfter)
	assert.GreaterOrEqual(t, cutAfter, lim.ReadHeaderTimeout-50*time.Millisecond)
	assert.Less(t, cutAfter, lim.ReadHeaderTimeout+time.Second)

	// A request with its headers sent at once is unaffected.
	r, err := http.Get("http://" + addr + "/up")
	require.NoError(t, err)
	_ = r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode)
}

func TestCapHeaderBytes(t *testing.T) {
	s := start(t, baseConfig())
	addr := serveLimited(t, s, main.DefaultHTTPLimits)
	for _, tc := range []struct {
		name   string
		size   int
		status int
	}{
		{"a big token fits", 4 << 10, http.StatusOK},
		// net/http allows 4 KiB of slack over MaxHeaderBytes.
		{"over the cap", 32 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = fmt.Fprintf(conn, "GET /up HTTP/1.1\r\nHost: chatterly\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", tc.size))
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

// The server's read, write and request timeouts are for requests: a
// WebSocket outlives them, reading and writing.
func TestCapTimeoutsSpareWebSockets(t *testing.T) {
	s := start(t, baseConfig())
	lim := main.DefaultHTTPLimits
	lim.ReadTimeout, lim.WriteTimeout, lim.RequestTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	addr := serveLimited(t, s, lim)
	alice := s.register("alice")

	conn, resp, err := dialCable(cableDialer(), "ws://"+addr+"/cable?token="+alice.token, nil)
	require.NoError(t, err)
	_ = resp.Body.Close() // the handshake's; the socket is conn
	c := newClient(t, conn, resp)
	c.expectWelcome(t)
	time.Sleep(3 * lim.ReadTimeout)
	c.mustConfirm(t, userIdent)
	// A ping is written by the server well after WriteTimeout.
	f, ok := c.pull(4 * time.Second)
	require.True(t, ok, "a ping within 4 s")
	require.NoError(t, f.err, "the socket outlived the request timeouts")
	assert.True(t, f.isPing(), "got %s", f.raw)
}

// A storm of connects beyond CABLE_CONNECT_RATE is told to come back
// later, before any authentication work is spent on it.
func TestLimitsConnectRate(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		cfg := m.config(t)
		cfg.CableConnectRate, cfg.CableConnectBurst = 1, 2
		s := start(t, cfg)
		u := s.freshUsers()
		s.cable(t, u.alice)
		s.cable(t, u.bob)
		busy := dial(t, s, "not even a token", nil)
		busy.expectDisconnect(t, `{"type":"disconnect","reason":"server_busy","reconnect":true}`)
		assert.Equal(t, 1.0, s.metric(t, "chatterly_cable_busy_total"))
		require.Eventually(t, func() bool {
			c := dial(t, s, u.carol.token, nil)
			f := c.next(t)
			c.close()
			return f["type"] == "welcome"
		}, 5*time.Second, 300*time.Millisecond, "the rate refills")
	})
}
