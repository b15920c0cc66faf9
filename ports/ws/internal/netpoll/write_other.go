//go:build !unix

package netpoll

import "net"

// enableOffer does nothing off Unix: Write waits as net.Conn does, and
// WriteBlockedSince says it does not know.
func (f *FrameBounded) enableOffer(*net.TCPConn) {}
