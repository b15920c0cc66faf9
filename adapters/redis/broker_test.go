package redis_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/chat/chattest"
)

func TestBroker(t *testing.T) {
	chattest.RunPublisher(t, func(t *testing.T, hist chat.HistoryConfig, deliverA, deliverB func(string, []byte, chat.Eviction, chat.Position)) (chattest.Broker, chattest.Broker) {
		c := redistest.New(t)
		a, err := redis.NewBroker(c, deliverA)
		require.NoError(t, err)
		a.KeepHistory(hist)
		t.Cleanup(a.Close)
		b, err := redis.NewBroker(c, deliverB)
		require.NoError(t, err)
		b.KeepHistory(hist)
		t.Cleanup(b.Close)
		return a, b
	})
}

func TestBrokersOfOtherPrefixesDoNotMeet(t *testing.T) {
	got := make(chan string, 10)
	a, err := redis.NewBroker(redistest.New(t), func(_ string, payload []byte, _ chat.Eviction, _ chat.Position) { got <- string(payload) })
	require.NoError(t, err)
	t.Cleanup(a.Close)
	b, err := redis.NewBroker(redistest.New(t), func(string, []byte, chat.Eviction, chat.Position) {})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, a.Subscribe(t.Context(), "s"))

	require.NoError(t, b.Publish(t.Context(), "s", []byte("other prefix")))
	require.NoError(t, a.Publish(t.Context(), "s", []byte("own prefix")))
	select {
	case payload := <-got:
		assert.Equal(t, "own prefix", payload)
	case <-time.After(5 * time.Second):
		t.Fatal("a's own publish was not delivered")
	}
}

func TestNewBrokerWithoutRedis(t *testing.T) {
	c, err := redis.Open(t.Context(), redistest.URL(t), "chatterlytest:")
	require.NoError(t, err)
	c.Close()
	b, err := redis.NewBroker(c, func(string, []byte, chat.Eviction, chat.Position) {})
	assert.Nil(t, b)
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
}

// TestBrokerUsesOneConnection checks that all the subscriptions of a
// Broker share one connection: the stream count is odd enough that no
// other test's connection has as many.
func TestBrokerUsesOneConnection(t *testing.T) {
	const streams = 137
	b, err := redis.NewBroker(redistest.New(t), func(string, []byte, chat.Eviction, chat.Position) {})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	for i := range streams {
		require.NoError(t, b.Subscribe(t.Context(), fmt.Sprint("s", i)))
	}

	opt, err := rueidis.ParseURL(redistest.URL(t))
	require.NoError(t, err)
	opt.DisableCache = true
	rdb, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	t.Cleanup(rdb.Close)
	list, err := rdb.Do(t.Context(), rdb.B().ClientList().TypePubsub().Build()).ToString()
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(list, fmt.Sprintf(" sub=%d ", streams)), list)
}

// TestBrokerReconnects cuts a Broker off from Redis, as a restart
// (connections dropped, then refused) or a network partition (connections
// that go silent) would, restores the way, and checks that the Broker
// subscribes again to the streams it holds, and to no others, within 5 s.
func TestBrokerReconnects(t *testing.T) {
	outages := []struct {
		name string
		mode relayMode
	}{
		{"restart", refusing},
		{"partition", silent},
	}
	for _, outage := range outages {
		t.Run(outage.name, func(t *testing.T) {
			t.Parallel()
			target, err := url.Parse(redistest.URL(t))
			require.NoError(t, err)
			relay := startRelay(t, target.Host)
			relayed := *target
			relayed.Host = relay.addr()

			// The Broker under test reaches Redis through the relay; the
			// publisher, with the same prefix, directly.
			prefix := "chatterlytest:broker:" + rand.Text() + ":"
			open := func(u *url.URL) *redis.Client {
				c, err := redis.Open(t.Context(), u.String(), prefix)
				require.NoError(t, err)
				t.Cleanup(c.Close)
				return c
			}
			direct, through := open(target), open(&relayed)
			got := make(chan string, 1000)
			b, err := redis.NewBroker(through, func(stream string, payload []byte, _ chat.Eviction, _ chat.Position) {
				got <- stream + "=" + string(payload)
			})
			require.NoError(t, err)
			t.Cleanup(b.Close)
			pub, err := redis.NewBroker(direct, func(string, []byte, chat.Eviction, chat.Position) {})
			require.NoError(t, err)
			t.Cleanup(pub.Close)

			require.NoError(t, b.Subscribe(t.Context(), "kept"))
			require.NoError(t, b.Subscribe(t.Context(), "dropped"))
			require.NoError(t, pub.Publish(t.Context(), "kept", []byte("before")))
			require.Equal(t, "kept=before", receive(t, got))
			resubscribed := b.Resubscribed()

			relay.set(outage.mode)
			start := time.Now()
			// Unsubscribing while the connection is down or dying must keep
			// the stream out of the next connection.
			_ = b.Unsubscribe(t.Context(), "dropped")
			err = b.Subscribe(context.Background(), "during")
			assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
			assert.Less(t, time.Since(start), 5*time.Second, "Subscribe during the outage")
			time.Sleep(time.Second)

			relay.set(forwarding)
			restored := time.Now()
			// Publish until the Broker hears again; what was published
			// while it was reconnecting is lost, as documented.
			for i := 0; ; i++ {
				require.Less(t, time.Since(restored), 5*time.Second, "no delivery since Redis came back")
				require.NoError(t, pub.Publish(t.Context(), "dropped", []byte(fmt.Sprint(i))))
				require.NoError(t, pub.Publish(t.Context(), "during", []byte(fmt.Sprint(i))))
				require.NoError(t, pub.Publish(t.Context(), "kept", []byte(fmt.Sprint(i))))
				select {
				case msg := <-got:
					// Any kept=<n>: a late one may be of an earlier round.
					// dropped and during were published before it, so
					// they would have come first.
					require.Regexp(t, `^kept=\d+$`, msg)
				case <-time.After(100 * time.Millisecond):
					continue
				}
				break
			}
			t.Logf("deliveries resumed %v after the way to Redis was restored", time.Since(restored).Round(time.Millisecond))
			select {
			case <-resubscribed:
			case <-time.After(time.Second):
				t.Error("Resubscribed was not closed")
			}

			// The new connection serves new subscriptions too.
			require.NoError(t, b.Subscribe(t.Context(), "after"))
			require.NoError(t, pub.Publish(t.Context(), "after", []byte("x")))
			require.Equal(t, "after=x", receive(t, got))
		})
	}
}

func TestBrokerCloseWhileRedisIsDown(t *testing.T) {
	target, err := url.Parse(redistest.URL(t))
	require.NoError(t, err)
	relay := startRelay(t, target.Host)
	relayed := *target
	relayed.Host = relay.addr()
	c, err := redis.Open(t.Context(), relayed.String(), "chatterlytest:broker:"+rand.Text()+":")
	require.NoError(t, err)
	t.Cleanup(c.Close)
	b, err := redis.NewBroker(c, func(string, []byte, chat.Eviction, chat.Position) {})
	require.NoError(t, err)
	require.NoError(t, b.Subscribe(t.Context(), "s"))

	relay.set(refusing)
	time.Sleep(500 * time.Millisecond) // into the reconnection backoff
	start := time.Now()
	b.Close()
	assert.Less(t, time.Since(start), 5*time.Second)
	err = b.Subscribe(t.Context(), "s")
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
}

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case msg := <-got:
		return msg
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered in 5s")
		return ""
	}
}

type relayMode int

const (
	forwarding relayMode = iota
	refusing             // new connections are closed at once, like a Redis that is down
	silent               // connections stay open but nothing gets through, like a partition
)

// relay forwards TCP connections to a target, or cuts them off as a Redis
// restart or a network partition would. Unlike proxy, it can be restored.
type relay struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	mode   relayMode
	conns  map[net.Conn]struct{}
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &relay{l: l, target: target, conns: make(map[net.Conn]struct{})}
	r.wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			r.handle(client)
		}
	})
	t.Cleanup(func() {
		l.Close()
		r.set(refusing)
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.l.Addr().String() }

func (r *relay) handle(client net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.mode {
	case refusing:
		client.Close()
		return
	case silent:
		r.conns[client] = struct{}{} // held open, never answered
		return
	}
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	r.conns[client], r.conns[server] = struct{}{}, struct{}{}
	r.wg.Go(func() { r.pipe(server, client) })
	r.wg.Go(func() { r.pipe(client, server) })
}

// pipe copies src to dst until either ends; while silent it swallows what
// it reads.
func (r *relay) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && r.flowing() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *relay) flowing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mode == forwarding
}

// set switches the mode. Going silent keeps the connections open; any
// other switch closes them, as a restart does, or as both ends eventually
// do once a partition has outlasted their timeouts.
func (r *relay) set(m relayMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode = m
	if m != silent {
		for c := range r.conns {
			c.Close()
		}
		clear(r.conns)
	}
}
