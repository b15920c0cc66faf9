//go:build !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Poller is Linux-only (epoll); elsewhere every connection has a reader
// goroutine.
type Poller struct{}

// Registration is one socket watched by a Poller.
type Registration struct{}

// Default returns nil: there is no poller on this platform.
func Default() *Poller { return nil }

// New fails: there is no poller on this platform.
func New() (*Poller, error) { return nil, errNoPoller }

// Add fails: there is no poller on this platform.
func (p *Poller) Add(syscall.Conn, func()) (*Registration, error) { return nil, errNoPoller }

// Rearm fails: there is no poller on this platform.
func (r *Registration) Rearm() error { return errNoPoller }

// Remove does nothing.
func (r *Registration) Remove() {}

var errNoPoller = errors.New("netpoll: no poller on this platform")
