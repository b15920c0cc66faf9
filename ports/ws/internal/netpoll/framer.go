// Package netpoll is the transport under the WebSocket gateway: an epoll
// poller that runs a callback when an idle socket becomes readable, and a
// socket that the WebSocket library cannot read past a frame's end, so that
// no frame waits in a buffer the poller does not see. It knows nothing of
// connections, subscriptions or Action Cable.
package netpoll

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	nethttp "net/http"
)

// FrameBounded is the client's socket as the WebSocket library reads it:
// no Read returns bytes past the end of the frame being read. The library
// buffers what it reads, so without this a second frame that arrived with
// the first could sit in its buffer, invisible to the Poller, which only
// sees the socket. With it, the buffer is empty whenever a whole message
// has been read.
//
// It parses just enough of RFC 6455 framing to find frame ends: the two
// fixed header bytes, the extended length and the masking key. Its Write
// (write.go) notes when the kernel refuses bytes.
type FrameBounded struct {
	net.Conn
	// TCP is the socket for the Poller; nil when it is not TCP.
	TCP *net.TCPConn

	hdr     [14]byte
	have    int    // header bytes seen of the current frame
	hdrLen  int    // the current frame's header length, once known (else 0)
	payload uint64 // payload bytes still to come in the current frame

	writeState
}

// Read reads at most to the end of the current frame.
func (f *FrameBounded) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var want int
	switch {
	case f.hdrLen == 0: // the two bytes that give the header's length
		want = 2 - f.have
	case f.have < f.hdrLen:
		want = f.hdrLen - f.have
	default:
		want = int(min(f.payload, uint64(len(p)))) //nolint:gosec // G115: at most len(p)
	}
	n, err := f.Conn.Read(p[:min(want, len(p))])
	f.account(p[:n])
	return n, err
}

// account advances the frame state over bytes just read.
func (f *FrameBounded) account(b []byte) {
	for len(b) > 0 {
		if f.hdrLen == 0 || f.have < f.hdrLen {
			k := copy(f.hdr[f.have:max(f.have, f.headerTarget())], b)
			f.have += k
			b = b[k:]
			if f.hdrLen == 0 && f.have >= 2 {
				f.hdrLen = headerLen(f.hdr[1])
			}
			if f.hdrLen != 0 && f.have == f.hdrLen {
				f.payload = payloadLen(f.hdr[:f.hdrLen])
				f.nextIfEmpty()
			}
			continue
		}
		k := int(min(f.payload, uint64(len(b)))) //nolint:gosec // G115: at most len(b)
		f.payload -= uint64(k)
		b = b[k:]
		f.nextIfEmpty()
	}
}

func (f *FrameBounded) headerTarget() int {
	if f.hdrLen == 0 {
		return 2
	}
	return f.hdrLen
}

// nextIfEmpty starts the next frame once the current one is consumed.
func (f *FrameBounded) nextIfEmpty() {
	if f.hdrLen != 0 && f.have == f.hdrLen && f.payload == 0 {
		f.have, f.hdrLen = 0, 0
	}
}

// AtBoundary reports whether every byte read so far belongs to a frame
// that has been read whole.
func (f *FrameBounded) AtBoundary() bool { return f.have == 0 }

// headerLen is the header length announced by the second header byte.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4 // masking key (client frames are always masked)
	}
	return n
}

func payloadLen(h []byte) uint64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(l)
	}
}

// BoundedWriter hands the WebSocket library a FrameBounded socket when it
// hijacks the connection.
type BoundedWriter struct {
	nethttp.ResponseWriter
	// Conn is the hijacked socket; nil before Hijack.
	Conn *FrameBounded
}

var errNoHijack = errors.New("netpoll: response does not support hijacking")

// Hijack hijacks the connection and wraps its socket in a FrameBounded.
func (w *BoundedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(nethttp.Hijacker)
	if !ok {
		return nil, nil, errNoHijack
	}
	c, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.Conn = &FrameBounded{Conn: c}
	w.Conn.TCP, _ = c.(*net.TCPConn)
	if w.Conn.TCP != nil {
		w.Conn.enableOffer(w.Conn.TCP)
	}
	return w.Conn, brw, nil
}
