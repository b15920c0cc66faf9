package netpoll_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
)

// clientFrame builds a masked client frame with a payload of n bytes.
func clientFrame(opcode byte, n int) []byte {
	f := []byte{0x80 | opcode}
	switch {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 1, 2, 3, 4) // masking key
	return append(f, bytes.Repeat([]byte{'x'}, n)...)
}

// streamConn is a net.Conn reading from a byte stream, as many bytes as asked.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c streamConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestFrameBoundedNeverReadsPastAFrame(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		chunk int // the reader's buffer size
	}{
		{"small frames back to back", []int{120, 5, 0, 125}, 4096},
		{"16-bit lengths", []int{126, 300, 65535, 1}, 4096},
		{"64-bit length", []int{70000, 3}, 4096},
		{"tiny reader buffer", []int{200, 0, 9, 130}, 3},
		{"one-byte reads", []int{7, 126, 0}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stream []byte
			var ends []int
			for i, n := range tt.sizes {
				op := byte(1) // text
				if n == 0 && i%2 == 0 {
					op = 9 // an empty ping
				}
				stream = append(stream, clientFrame(op, n)...)
				ends = append(ends, len(stream))
			}
			f := &netpoll.FrameBounded{Conn: streamConn{r: bytes.NewReader(stream)}}
			buf := make([]byte, tt.chunk)
			off, next := 0, 0
			for off < len(stream) {
				n, err := f.Read(buf)
				require.NoError(t, err)
				require.Positive(t, n)
				require.Equal(t, stream[off:off+n], buf[:n])
				for next < len(ends) && ends[next] <= off {
					next++
				}
				off += n
				require.LessOrEqual(t, off, ends[next], "a read crossed the end of frame %d", next)
				assert.Equal(t, off == ends[next], f.AtBoundary(), "at offset %d", off)
			}
			n, err := f.Read(buf)
			assert.Zero(t, n)
			assert.ErrorIs(t, err, io.EOF)
		})
	}
}
