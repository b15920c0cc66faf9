package netpoll

import (
	"sync/atomic"
	"syscall"
	"time"
)

// Write writes p to the client. It offers p to the kernel first without
// waiting; only when the socket's send buffer takes less than all of it
// does it note the time and wait for room, as net.Conn's Write does.
//
// That note is what tells a client that does not read from a writer that
// has not had a CPU: on a busy machine a goroutine can sit tens of
// milliseconds inside a write that the kernel accepted at once, and
// judging by the time spent in Write evicted clients that read everything
// (TestWSSlowClient under CPU contention). The kernel refuses bytes only
// when the peer, or the network to it, does not take them.
func (f *FrameBounded) Write(p []byte) (int, error) {
	if f.raw == nil {
		return f.Conn.Write(p)
	}
	n := f.offer(p)
	if n == len(p) {
		return n, nil
	}
	f.fullSince.Store(time.Now().UnixNano())
	m, err := f.Conn.Write(p[n:])
	f.fullSince.Store(0)
	return n + m, err
}

// WriteBlockedSince is when the kernel last refused bytes of the write in
// progress, in Unix nanoseconds (0: it took all so far, or no write is in
// progress). known is false where the socket cannot say (not TCP, or not a
// Unix system): callers then have only the time spent in Write to go by.
func (f *FrameBounded) WriteBlockedSince() (since int64, known bool) {
	if f.raw == nil {
		return 0, false
	}
	return f.fullSince.Load(), true
}

// offer writes what the kernel takes of p at once and returns how much.
// Errors are left to the waiting write that follows, which reports them
// as net.Conn does.
func (f *FrameBounded) offer(p []byte) int {
	f.pending, f.offered = p, 0
	if f.raw.Write(f.offerFn) != nil {
		f.offered = 0
	}
	f.pending = nil
	return f.offered
}

// writeState is FrameBounded's write side; only the one goroutine that
// writes to a connection touches it, but for fullSince.
type writeState struct {
	raw       syscall.RawConn // nil: no non-blocking offer on this socket
	offerFn   func(fd uintptr) bool
	pending   []byte
	offered   int
	fullSince atomic.Int64
}
