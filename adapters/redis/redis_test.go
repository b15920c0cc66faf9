package redis_test

import (
	"context"
	"crypto/rand"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core"
)

func TestOpen(t *testing.T) {
	good := redistest.URL(t)
	tests := []struct {
		name     string
		url      string
		wantKind core.Kind
	}{
		{"bad scheme", "http://127.0.0.1:6379", core.Internal},
		{"bad database", "redis://127.0.0.1:6379/x", core.Internal},
		{"nothing listens", "redis://" + closedAddr(t) + "/0", core.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c, err := redis.Open(t.Context(), tt.url, "chatterlytest:")
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Equal(t, tt.wantKind, core.KindOf(err), "%v", err)
			assert.Less(t, time.Since(start), 5*time.Second)
		})
	}

	t.Run("password is not in the error", func(t *testing.T) {
		_, err := redis.Open(t.Context(), "redis://user:s3cret@127.0.0.1:6379/x", "")
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "s3cret")
	})

	t.Run("reachable", func(t *testing.T) {
		c, err := redis.Open(t.Context(), good, "chatterlytest:")
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Ping(t.Context()))
	})
}

func TestClosedClientIsUnavailable(t *testing.T) {
	c, err := redis.Open(t.Context(), redistest.URL(t), "chatterlytest:")
	require.NoError(t, err)
	c.Close()
	err = c.Ping(t.Context())
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
	_, err = redis.NewDenylist(c).Revoked(t.Context(), "jti")
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
}

// TestRedisDown cuts the adapters off from a Redis that was working, as a
// crash (connections refused) or a network partition (connections that
// never answer) would, and checks that every call fails fast with
// Unavailable: never hangs, never answers "not revoked" or "offline".
func TestRedisDown(t *testing.T) {
	outages := []struct {
		name  string
		start func(*proxy)
	}{
		{"refused", (*proxy).stop},
		{"unresponsive", (*proxy).freeze},
	}
	for _, outage := range outages {
		t.Run(outage.name, func(t *testing.T) {
			t.Parallel()
			target, err := url.Parse(redistest.URL(t))
			require.NoError(t, err)
			proxy := startProxy(t, target.Host)
			proxied := *target
			proxied.Host = proxy.addr()

			// The keys written before the outage expire on their own: the
			// client that wrote them cannot delete them afterwards.
			const ttl = 10 * time.Second
			c, err := redis.Open(t.Context(), proxied.String(), "chatterlytest:down:"+rand.Text()+":")
			require.NoError(t, err)
			t.Cleanup(c.Close)
			denylist, tracker := redis.NewDenylist(c), redis.NewPresence(c)

			require.NoError(t, denylist.Revoke(t.Context(), "jti", time.Now().Add(ttl)))
			revoked, err := denylist.Revoked(t.Context(), "jti")
			require.NoError(t, err)
			require.True(t, revoked)
			_, err = tracker.Touch(t.Context(), 1, "conn", ttl)
			require.NoError(t, err)
			online, err := tracker.Online(t.Context(), []int64{1})
			require.NoError(t, err)
			require.True(t, online[1])

			outage.start(proxy)

			calls := []struct {
				name string
				call func(ctx context.Context) error
			}{
				{"Denylist.Revoked", func(ctx context.Context) error {
					revoked, err := denylist.Revoked(ctx, "jti")
					assert.False(t, revoked)
					return err
				}},
				{"Denylist.Revoke", func(ctx context.Context) error {
					return denylist.Revoke(ctx, "other-jti", time.Now().Add(ttl))
				}},
				{"Presence.Online", func(ctx context.Context) error {
					online, err := tracker.Online(ctx, []int64{1})
					assert.Nil(t, online)
					return err
				}},
				{"Presence.Touch", func(ctx context.Context) error {
					_, err := tracker.Touch(ctx, 1, "conn", ttl)
					return err
				}},
				{"Presence.Leave", func(ctx context.Context) error {
					_, err := tracker.Leave(ctx, 1, "conn")
					return err
				}},
				{"Presence.Lapsed", func(ctx context.Context) error {
					_, err := tracker.Lapsed(ctx)
					return err
				}},
				{"Client.Ping", func(ctx context.Context) error { return c.Ping(ctx) }},
			}
			// All at once, so an unresponsive Redis costs one timeout, not six.
			// No deadline of their own: the adapter must not rely on the caller's.
			start := time.Now()
			done := make([]chan error, len(calls))
			for i, tc := range calls {
				done[i] = make(chan error, 1)
				go func() { done[i] <- tc.call(context.Background()) }()
			}
			giveUp := time.After(15 * time.Second)
			for i, tc := range calls {
				select {
				case err := <-done[i]:
					require.Error(t, err, tc.name)
					assert.Equal(t, core.Unavailable, core.KindOf(err), "%s: %v", tc.name, err)
					assert.Less(t, time.Since(start), 5*time.Second, tc.name)
					t.Logf("%s failed within %v: %v", tc.name, time.Since(start).Round(time.Millisecond), err)
				case <-giveUp:
					t.Fatalf("%s: still waiting after 15s", tc.name)
				}
			}
		})
	}
}

// closedAddr returns an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// proxy forwards TCP connections to a target until stopped or frozen.
type proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	frozen bool
	closed bool
	conns  []net.Conn
	// thaw is closed by stop, releasing whatever freeze holds.
	thaw chan struct{}
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{l: l, target: target, thaw: make(chan struct{})}
	p.wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			p.handle(client)
		}
	})
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) handle(client net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		client.Close()
		return
	}
	p.conns = append(p.conns, client)
	if p.frozen {
		return // held open, never answered
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.conns = append(p.conns, server)
	p.wg.Go(func() { p.pipe(server, client) })
	p.wg.Go(func() { p.pipe(client, server) })
}

// pipe copies src to dst until either ends, or until freeze, after which it
// swallows what it reads, like a network that lost its route.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isFrozen() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if p.isFrozen() {
				<-p.thaw // keep dst open and silent
			}
			return
		}
	}
}

func (p *proxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// freeze stops answering: connections stay open but nothing gets through,
// and new connections are accepted and then ignored.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// stop closes the listener and every proxied connection, so that new
// connections are refused, then waits for the forwarding goroutines. It may
// be called more than once.
func (p *proxy) stop() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.thaw)
		p.l.Close()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}
