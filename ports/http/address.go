package http

import (
	"net/netip"
	"slices"

	"github.com/labstack/echo/v4"
)

// clientAddress returns the address that per-address limits count a request
// by, and whether that address may stand for many people: one in the shared
// networks, however it was learnt, or a trusted proxy's own when it
// forwarded none (the web client's server signing users in). Limiting a
// shared address per address would limit everyone behind it at once.
func (s *Server) clientAddress(c echo.Context) (addr string, shared bool) {
	addr = c.RealIP()
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr, true // not an IP (a unix socket): nothing says it is one client
	}
	a = a.Unmap()
	if contains(s.shared, a) {
		return addr, true
	}
	// RealIP is the peer itself unless a trusted proxy forwarded an address.
	return addr, contains(s.trusted, a)
}

func contains(nets []netip.Prefix, ip netip.Addr) bool {
	return slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(ip) })
}
