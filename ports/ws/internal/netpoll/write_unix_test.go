//go:build unix

package netpoll

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpPair is a connected loopback pair with small buffers, so that a peer
// that stops reading fills them quickly: the server's end as the gateway
// wraps it, and the client's.
func tcpPair(t *testing.T) (*FrameBounded, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	tcp := server.(*net.TCPConn)
	require.NoError(t, tcp.SetWriteBuffer(8<<10))
	require.NoError(t, client.(*net.TCPConn).SetReadBuffer(8<<10))
	f := &FrameBounded{Conn: tcp, TCP: tcp}
	f.enableOffer(tcp)
	return f, client.(*net.TCPConn)
}

// The kernel's verdict, not the time spent in Write, says whether the
// client takes what is written: nothing is refused while it reads, and a
// write it does not read is marked blocked until it reads again.
func TestWriteBlockedSinceIsTheKernelsVerdict(t *testing.T) {
	f, client := tcpPair(t)
	since, known := f.WriteBlockedSince()
	require.True(t, known, "TCP on Unix can say")
	require.Zero(t, since)

	t.Run("a client that reads", func(t *testing.T) {
		chunk := bytes.Repeat([]byte("r"), 512)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(client, int64(100*len(chunk))))
			got <- b
		}()
		for range 100 {
			n, err := f.Write(chunk)
			require.NoError(t, err)
			require.Equal(t, len(chunk), n)
			since, _ := f.WriteBlockedSince()
			assert.Zero(t, since, "no write is in progress")
		}
		assert.Equal(t, bytes.Repeat(chunk, 100), <-got)
	})

	t.Run("a client that stops reading", func(t *testing.T) {
		big := make([]byte, 256<<10) // far more than both buffers hold
		for i := range big {
			big[i] = byte(i)
		}
		done := make(chan error, 1)
		go func() {
			_, err := f.Write(big)
			done <- err
		}()
		require.Eventually(t, func() bool { s, _ := f.WriteBlockedSince(); return s != 0 },
			5*time.Second, time.Millisecond, "the write is marked blocked")
		s, _ := f.WriteBlockedSince()
		assert.WithinDuration(t, time.Now(), time.Unix(0, s), 5*time.Second)

		read := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(client, int64(len(big))))
			read <- b
		}()
		require.NoError(t, <-done)
		since, _ := f.WriteBlockedSince()
		assert.Zero(t, since, "unmarked once the write completes")
		assert.True(t, bytes.Equal(big, <-read), "every byte once, in order, across the offer and the wait")
	})
}
