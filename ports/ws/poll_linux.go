//go:build linux

package ws

import (
	"errors"
	"sync"
	"syscall"
)

// poller watches idle connections for readability with one epoll instance,
// so that a connection costs no goroutine while its client is silent: a
// reader goroutine's stack (4–8 KiB, never returned while it waits) is the
// largest part of an idle connection. When a client sends, one goroutine
// reads and handles its messages, then the connection is re-armed.
//
// Registrations are one-shot, so at most one goroutine reads a connection
// at a time, and keyed by a registration number rather than the file
// descriptor, which the kernel reuses.
type poller struct {
	epfd int

	mu    sync.Mutex
	next  uint64
	conns map[uint64]*conn
}

var (
	sharedPoller     *poller
	sharedPollerOnce sync.Once
)

// defaultPoller returns the process's poller, started on first use; nil
// when epoll is unavailable (the caller falls back to reader goroutines).
func defaultPoller() *poller {
	sharedPollerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return // reader goroutines it is
		}
		sharedPoller = &poller{epfd: fd, conns: map[uint64]*conn{}}
		go sharedPoller.run()
	})
	return sharedPoller
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// add registers c, whose socket must be TCP. A client that has sent
// already is reported at once (epoll is level-triggered).
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.next++
	key := p.next
	p.conns[key] = c
	p.mu.Unlock()
	c.pollKey = key
	if err := p.ctl(c, syscall.EPOLL_CTL_ADD); err != nil {
		p.mu.Lock()
		delete(p.conns, key)
		p.mu.Unlock()
		return err
	}
	return nil
}

// rearm watches c again after its reader is done.
func (p *poller) rearm(c *conn) error { return p.ctl(c, syscall.EPOLL_CTL_MOD) }

// remove forgets c. It must run before the socket is closed: afterwards
// the descriptor may already name another connection.
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.pollKey)
	p.mu.Unlock()
	_ = p.ctl(c, syscall.EPOLL_CTL_DEL)
}

var errClosed = errors.New("ws: connection closed")

func (p *poller) ctl(c *conn, op int) error {
	rc, err := c.raw.tcp.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: pollEvents}
		// The event carries the registration number in its 8 data bytes.
		ev.Fd, ev.Pad = int32(uint32(c.pollKey)), int32(uint32(c.pollKey>>32)) //nolint:gosec // bit-for-bit split of a uint64
		opErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return errClosed
	}
	return opErr
}

func (p *poller) run() {
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
			c := p.conns[key]
			p.mu.Unlock()
			if c != nil {
				go c.srv.readReady(c)
			}
		}
	}
}
