package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startPair starts two servers on the same PostgreSQL and Redis, as two
// processes behind a load balancer would run.
func startPair(t *testing.T) (a, b *stack) {
	t.Helper()
	cfg := raised(modes[1].config(t), "register_ip")
	return start(t, cfg), start(t, cfg)
}

// Events, presence and revocations cross instances.
func TestMultiInstance(t *testing.T) {
	a, b := startPair(t)

	t.Run("a message posted to A reaches a subscriber on B", func(t *testing.T) {
		u := a.freshUsers()
		g := num(t, a.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
		onB, onA := b.cable(t, u.bob), a.cable(t, u.carol)
		onB.mustConfirm(t, convIdent(g))
		onA.mustConfirm(t, convIdent(g))
		msg := a.send(t, u.alice, g, "across")
		for _, c := range []*wsClient{onA, onB} {
			ev := c.expectEvent(t, convIdent(g), "new_message")
			assertEvent(t, ev, "new_message", "message", msg)
			c.quiet(t, "once, whichever instance")
		}
		msg = b.send(t, u.alice, g, "and back")
		for _, c := range []*wsClient{onA, onB} {
			assertEvent(t, c.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
		}
	})

	t.Run("typing on B reaches A", func(t *testing.T) {
		u := a.freshUsers()
		g := num(t, a.createGroup(t, u.alice, "g", u.bob)["id"])
		onA, onB := a.cable(t, u.alice), b.cable(t, u.bob)
		onA.mustConfirm(t, convIdent(g))
		onB.mustConfirm(t, convIdent(g))
		onB.perform(convIdent(g), map[string]any{"action": "typing"})
		ev := onA.expectEvent(t, convIdent(g), "typing_start")
		assert.Equal(t, u.bob.id, num(t, ev["user_id"]))
		onB.expectEvent(t, convIdent(g), "typing_start")
	})

	t.Run("new_conversation created on A reaches B", func(t *testing.T) {
		u := a.freshUsers()
		onB := b.cable(t, u.bob)
		onB.mustConfirm(t, userIdent)
		team := a.createGroup(t, u.alice, "team", u.bob)
		assertEvent(t, onB.expectEvent(t, userIdent, "new_conversation"), "new_conversation", "conversation", team)
	})

	t.Run("presence is announced across", func(t *testing.T) {
		u := a.freshUsers()
		a.createGroup(t, u.alice, "g", u.bob)
		bob := b.cable(t, u.bob)
		bob.mustConfirm(t, presenceIdent)
		bob.expectEvent(t, presenceIdent, "initial_presence")

		alice := a.cable(t, u.alice)
		alice.mustConfirm(t, presenceIdent)
		ev := alice.expectEvent(t, presenceIdent, "initial_presence")
		assert.Equal(t, []any{float64(u.bob.id)}, ev["online_user_ids"], "bob is online on B")
		assert.JSONEq(t, statusEvent(u.alice.id, a.username(t, u.alice), "online"),
			toJSON(t, bob.expectMessage(t, presenceIdent, presenceOf(u.alice, "online"))))

		alice.close()
		assert.JSONEq(t, statusEvent(u.alice.id, a.username(t, u.alice), "offline"),
			toJSON(t, bob.expectMessage(t, presenceIdent, presenceOf(u.alice, "offline"))))
	})

	t.Run("two connections on two instances", func(t *testing.T) {
		u := a.freshUsers()
		a.createGroup(t, u.alice, "g", u.bob)
		bob := a.cable(t, u.bob)
		bob.mustConfirm(t, presenceIdent)
		onA, onB := a.cable(t, u.alice), b.cable(t, u.alice)
		onA.mustConfirm(t, presenceIdent)
		bob.expectMessage(t, presenceIdent, presenceOf(u.alice, "online"))
		onB.mustConfirm(t, presenceIdent)
		bob.expectNone(t, onIdent(presenceIdent, presenceOf(u.alice, "online")), wsQuiet)

		onA.close()
		bob.expectNone(t, onIdent(presenceIdent, presenceOf(u.alice, "offline")), 700*time.Millisecond)
		assert.True(t, b.isOnline(t, u.bob, u.alice))
		onB.close()
		bob.expectMessage(t, presenceIdent, presenceOf(u.alice, "offline"))
		assert.False(t, a.isOnline(t, u.bob, u.alice))
	})

	t.Run("becoming contacts on A announces across", func(t *testing.T) {
		u := a.freshUsers()
		carol, dave := a.cable(t, u.carol), b.cable(t, u.dave)
		carol.mustConfirm(t, presenceIdent)
		dave.mustConfirm(t, presenceIdent)
		a.createDirect(t, u.carol, u.dave)
		dave.expectMessage(t, presenceIdent, presenceOf(u.carol, "online"))
		carol.expectMessage(t, presenceIdent, presenceOf(u.dave, "online"))
	})

	t.Run("logout on A closes the socket on B", func(t *testing.T) {
		u := a.freshUsers()
		other := b.login(t, u.alice)
		onB := b.cable(t, u.alice)
		onB.mustConfirm(t, userIdent)
		kept := dial(t, b, other, nil)
		kept.expectWelcome(t)
		r := a.do("DELETE", "/auth/logout", u.alice.token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		loggedOut := time.Now()
		onB.expectDisconnect(t, unauthorizedFrame)
		assert.Less(t, time.Since(loggedOut), time.Second+200*time.Millisecond, "closed within a second")
		kept.expectNone(t, anyFrame, wsQuiet)
		kept.mustConfirm(t, userIdent)
	})

	t.Run("member removal on A stops deliveries on B", func(t *testing.T) {
		u := a.freshUsers()
		g := num(t, a.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
		bob, carol := b.cable(t, u.bob), b.cable(t, u.carol)
		bob.mustConfirm(t, convIdent(g))
		carol.mustConfirm(t, convIdent(g))
		r := a.do("DELETE", membershipPath(g, u.bob.id), u.alice.token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		removed := time.Now()
		carol.expectEvent(t, convIdent(g), "member_left")
		time.Sleep(time.Until(removed.Add(time.Second)))

		msg := a.send(t, u.alice, g, "bob is gone")
		assertEvent(t, carol.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
		bob.expectNone(t, onIdent(convIdent(g), ofType("new_message")), wsQuiet)
		bob.mustReject(t, convIdent(g))
	})

	t.Run("conversation deleted on A drops subscriptions on B", func(t *testing.T) {
		u := a.freshUsers()
		g := num(t, a.createGroup(t, u.alice, "g", u.bob)["id"])
		bob := b.cable(t, u.bob)
		bob.mustConfirm(t, convIdent(g))
		stream := b.subscribe(t, convStream(g)) // bob's instance is the one that would publish
		require.Equal(t, http.StatusOK, a.do("DELETE", convPath(g), u.alice.token, nil).status)
		time.Sleep(time.Second)
		stream.drain()
		bob.perform(convIdent(g), map[string]any{"action": "typing"})
		stream.none(t, "the dropped subscription performs nothing")
		bob.mustReject(t, convIdent(g))
	})
}
