//go:build unix

package netpoll

import (
	"net"
	"syscall"
)

// enableOffer lets Write offer bytes to the kernel without waiting.
func (f *FrameBounded) enableOffer(c *net.TCPConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	f.raw = raw
	// Bound once: a method value made per write would allocate per frame.
	f.offerFn = f.offerOnce
}

// offerOnce is one non-blocking write(2); the descriptor is non-blocking, as
// Go keeps every socket. Returning true ends RawConn.Write without waiting.
func (f *FrameBounded) offerOnce(fd uintptr) bool {
	n, err := syscall.Write(int(fd), f.pending) //nolint:gosec // G115: a socket descriptor fits an int
	if err == nil {
		f.offered = n
	}
	return true
}
