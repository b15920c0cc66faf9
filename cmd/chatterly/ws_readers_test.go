package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every other WebSocket test runs through the epoll poller (Linux); this
// one drives the fallback, a reader goroutine per connection, through the
// same paths: subscribe, broadcast, actions, several frames in a row, and
// the cleanup that announces a user offline.
func TestWSGoroutineReaders(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		cfg := m.config(t)
		cfg.CableGoroutineReaders = true
		s := start(t, cfg)
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		id := convIdent(g)
		alice, bob := s.cable(t, u.alice), s.cable(t, u.bob)
		alice.mustConfirm(t, id)
		bob.mustConfirm(t, id)
		alice.mustConfirm(t, presenceIdent)

		r := s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": "hello"})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
		bob.expectEvent(t, id, "new_message")

		for range 3 { // back to back: each is read and handled in order
			bob.perform(id, map[string]any{"action": "typing"})
			bob.perform(id, map[string]any{"action": "stop_typing"})
		}
		for range 3 {
			alice.expectEvent(t, id, "typing_start")
			alice.expectEvent(t, id, "typing_stop")
		}

		bobPresence := s.cable(t, u.bob)
		bobPresence.mustConfirm(t, presenceIdent)
		alice.expect(t, onIdent(presenceIdent, presenceOf(u.bob, "online")))
		bobPresence.close()
		bob.close()
		alice.expect(t, onIdent(presenceIdent, presenceOf(u.bob, "offline")))
	})
}
