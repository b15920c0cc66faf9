//go:build linux

package netpoll_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	accepted, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = accepted.Close() })
	return accepted.(*net.TCPConn), client
}

// calls counts the runs of a callback.
type calls chan struct{}

func (c calls) ready() { c <- struct{}{} }

func (c calls) once(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "the callback did not run", what)
	}
}

func (c calls) none(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c:
		assert.Fail(t, "the callback ran", what)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPollerRunsTheCallbackOncePerArming(t *testing.T) {
	p, err := netpoll.New()
	require.NoError(t, err)
	server, client := tcpPair(t)
	got := make(calls, 8)
	reg, err := p.Add(server, got.ready)
	require.NoError(t, err)
	got.none(t, "before the peer sent anything")

	_, err = client.Write([]byte("a"))
	require.NoError(t, err)
	got.once(t, "the socket became readable")
	_, err = client.Write([]byte("b"))
	require.NoError(t, err)
	got.none(t, "one-shot: not again until rearmed")

	require.NoError(t, reg.Rearm())
	got.once(t, "rearmed with bytes still unread")

	buf := make([]byte, 8)
	_, err = server.Read(buf)
	require.NoError(t, err)
	require.NoError(t, reg.Rearm())
	got.none(t, "rearmed with nothing to read")
	_, err = client.Write([]byte("c"))
	require.NoError(t, err)
	got.once(t, "readable again")

	reg.Remove()
	_, err = client.Write([]byte("d"))
	require.NoError(t, err)
	got.none(t, "removed")
}
