//go:build !linux

package ws

import "errors"

// poller is Linux-only (epoll); elsewhere every connection has a reader
// goroutine.
type poller struct{}

func defaultPoller() *poller { return nil }

func (p *poller) add(*conn) error   { return errNoPoller }
func (p *poller) rearm(*conn) error { return errNoPoller }
func (p *poller) remove(*conn)      {}

var errNoPoller = errors.New("ws: no poller on this platform")
