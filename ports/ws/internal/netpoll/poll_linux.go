//go:build linux

package netpoll

import (
	"errors"
	"sync"
	"syscall"
)

// Poller watches idle sockets for readability with one epoll instance, so
// that a socket costs no goroutine while its peer is silent: a reader
// goroutine's stack (4–8 KiB, never returned while it waits) is the largest
// part of an idle WebSocket connection. When a socket has something to
// read, the Poller starts a goroutine that runs the socket's callback; the
// callback reads, then re-arms the registration.
//
// Registrations are one-shot, so at most one callback runs per socket at a
// time, and keyed by a registration number rather than the file
// descriptor, which the kernel reuses.
type Poller struct {
	epfd int

	mu    sync.Mutex
	next  uint64
	ready map[uint64]func()
}

// Registration is one socket watched by a Poller.
type Registration struct {
	p   *Poller
	key uint64
	rc  syscall.RawConn
}

var (
	shared     *Poller
	sharedOnce sync.Once
)

// Default returns the process's Poller, started on first use; nil when
// epoll is unavailable (callers fall back to reader goroutines).
func Default() *Poller {
	sharedOnce.Do(func() { shared, _ = New() })
	return shared
}

// New starts a Poller of its own. Its goroutine lives as long as the process.
func New() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &Poller{epfd: fd, ready: map[uint64]func(){}}
	go p.run()
	return p, nil
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// Add watches c and runs ready, on a goroutine of its own, once c has
// something to read (or its peer hung up); then not again until Rearm.
// A socket with unread bytes already is reported at once (epoll is
// level-triggered).
func (p *Poller) Add(c syscall.Conn, ready func()) (*Registration, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.next++
	r := &Registration{p: p, key: p.next, rc: rc}
	p.ready[r.key] = ready
	p.mu.Unlock()
	if err := r.ctl(syscall.EPOLL_CTL_ADD); err != nil {
		p.mu.Lock()
		delete(p.ready, r.key)
		p.mu.Unlock()
		return nil, err
	}
	return r, nil
}

// Rearm watches the socket again once its callback has read what there was.
func (r *Registration) Rearm() error { return r.ctl(syscall.EPOLL_CTL_MOD) }

// Remove stops watching the socket. It must run before the socket is
// closed: afterwards the descriptor may already name another socket.
func (r *Registration) Remove() {
	r.p.mu.Lock()
	delete(r.p.ready, r.key)
	r.p.mu.Unlock()
	_ = r.ctl(syscall.EPOLL_CTL_DEL)
}

// errClosed is returned for a socket closed before its registration changed.
var errClosed = errors.New("netpoll: socket closed")

func (r *Registration) ctl(op int) error {
	var opErr error
	err := r.rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: pollEvents}
		// The event carries the registration number in its 8 data bytes.
		ev.Fd, ev.Pad = int32(uint32(r.key)), int32(uint32(r.key>>32)) //nolint:gosec // bit-for-bit split of a uint64
		opErr = syscall.EpollCtl(r.p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return errClosed
	}
	return opErr
}

func (p *Poller) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 //nolint:gosec // reassembling the uint64 split in ctl
			p.mu.Lock()
			ready := p.ready[key]
			p.mu.Unlock()
			if ready != nil {
				go ready()
			}
		}
	}
}
