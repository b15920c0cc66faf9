package main_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answeredEvent is the call_ended that closes the ringing dialog of a member
// who is not in a call someone else answered.
func answeredEvent(callID int64) string {
	return `{"type":"call_ended","call_session_id":` + itoa(callID) + `,"reason":"answered_by_other"}`
}

// isAnswered matches answeredEvent's call_ended; isHungUp the call_ended that
// means the call is over.
func isAnswered(callID int64) func(map[string]any) bool {
	return func(msg map[string]any) bool {
		return callEvent("call_ended", callID)(msg) && msg["reason"] == "answered_by_other"
	}
}

func isHungUp(callID int64) func(map[string]any) bool {
	return func(msg map[string]any) bool { return callEvent("call_ended", callID)(msg) && msg["reason"] == nil }
}

// expectAnsweredByOther waits for answeredEvent on c's CallChannel.
func expectAnsweredByOther(t *testing.T, c *wsClient, callID int64) {
	t.Helper()
	exactly(t, answeredEvent(callID), c.expectMessage(t, callIdent, isAnswered(callID)))
}

// checkParticipantDeclined checks the participant_declined event about by on identifier.
func checkParticipantDeclined(t *testing.T, c *wsClient, identifier string, callID int64, by account) {
	t.Helper()
	ev := c.expectMessage(t, identifier, func(msg map[string]any) bool {
		u, _ := msg["user"].(map[string]any)
		id, _ := u["id"].(float64)
		return callEvent("participant_declined", callID)(msg) && int64(id) == by.id
	})
	assert.ElementsMatch(t, []string{"type", "call_session_id", "user"}, keys(ev), "participant_declined: %v", ev)
	assertUserIs(t, ev["user"], by)
}

// disturbing matches the CallChannel events the web client acts on, except
// signals from peer: what would tear down a 1:1 media session with peer.
func disturbing(callID, peer int64) func(map[string]any) bool {
	return onIdent(callIdent, func(msg map[string]any) bool {
		switch msg["type"] {
		case "call_accepted", "call_declined", "call_ended", "incoming_call":
			return true
		case "signal":
			from, _ := msg["from_user_id"].(float64)
			return callEvent("signal", callID)(msg) && int64(from) != peer
		}
		return false
	})
}

// accepter accepts a call as a, over REST or with accept_call on c.
type accepter struct {
	name   string
	accept func(t *testing.T, s *stack, a account, c *wsClient, cid, callID int64)
}

var accepters = []accepter{
	{"REST", func(t *testing.T, s *stack, a account, _ *wsClient, cid, callID int64) {
		t.Helper()
		s.acceptCall(t, a, cid, callID)
	}},
	{"socket", func(_ *testing.T, _ *stack, _ account, c *wsClient, _, callID int64) {
		callAction(c, "accept_call", callID)
	}},
}

// Issue case 1: in a group call that bob answered, carol's late accept joins
// it without a second call_accepted: alice's and bob's media session (one
// peer connection each, as the web client keeps) is not disturbed.
func TestCallGroupLateAccept(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		for _, how := range accepters {
			t.Run(how.name, func(t *testing.T) {
				u := s.freshUsers()
				g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
				alice, bob, carol := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true)
				watch := s.convWatcher(t, u.alice, g)

				id := num(t, s.startCall(t, u.alice, g, "video")["id"])
				checkIncoming(t, bob, id, g, u.alice, "video")
				checkIncoming(t, carol, id, g, u.alice, "video")

				// bob answers: alice offers to him; carol stops ringing.
				how.accept(t, s, u.bob, bob, g, id)
				checkAccepted(t, alice, id, u.bob)
				expectAnsweredByOther(t, carol, id)
				noCall(t, bob, "call_ended", id)
				sendSignal(alice, id, u.bob.id, offerSignal)
				expectSignal(t, bob, id, u.alice.id, offerSignal)
				sendSignal(bob, id, u.alice.id, answerSignal)
				expectSignal(t, alice, id, u.bob.id, answerSignal)

				// carol accepts late: she joins, announced as participant_joined only.
				act := s.activeCall(t, u.carol, g)
				assert.Equal(t, "active", act["status"])
				how.accept(t, s, u.carol, carol, g, id)
				checkJoined(t, alice, id, u.carol)
				checkJoined(t, bob, id, u.carol)
				alice.expectNone(t, disturbing(id, u.bob.id), wsQuiet)
				bob.expectNone(t, disturbing(id, u.alice.id), 0)
				noCall(t, carol, "participant_joined", id)
				assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id, u.carol.id}, participantIDs(t, s.activeCall(t, u.bob, g)))

				// Accepting again, by either, changes nothing.
				how.accept(t, s, u.bob, bob, g, id)
				how.accept(t, s, u.carol, carol, g, id)
				noCall(t, alice, "participant_joined", id)

				// alice's and bob's signaling goes on untouched.
				sendSignal(alice, id, u.bob.id, iceSignal)
				expectSignal(t, bob, id, u.alice.id, iceSignal)
				sendSignal(bob, id, u.alice.id, iceSignal)
				expectSignal(t, alice, id, u.bob.id, iceSignal)
				alice.expectNone(t, disturbing(id, u.bob.id), wsQuiet)
				bob.expectNone(t, disturbing(id, u.alice.id), 0)
				noSignal(t, carol, id)

				// Exactly one call_accepted over the whole call.
				s.endCall(t, u.alice, g, id)
				exactly(t, endedEvent(id), bob.expectMessage(t, callIdent, isHungUp(id)))
				exactly(t, endedEvent(id), carol.expectMessage(t, callIdent, isHungUp(id)))
				noCall(t, alice, "call_accepted", id)
				assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "video", "ended", true)
				assert.Len(t, s.callLogs(t, u.bob, g, id), 1)
			})
		}
	})
}

// Callees answering at once: one accept makes the call active and is the
// call's one call_accepted; the others join.
func TestCallGroupRacingAccepts(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		u := s.freshUsers()
		callees := []account{u.bob, u.carol, u.dave, u.eve}
		g := num(t, s.createGroup(t, u.alice, "g", callees...)["id"])
		alice := s.callClient(t, u.alice, true)
		id := num(t, s.startCall(t, u.alice, g, "audio")["id"])
		var wg sync.WaitGroup
		for _, c := range callees {
			wg.Go(func() {
				r := s.do("PUT", acceptPath(g, id), c.token, nil)
				assert.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			})
		}
		wg.Wait()
		ev := expectCall(t, alice, "call_accepted", id)
		noCall(t, alice, "call_accepted", id)
		var first account
		for _, c := range callees {
			if num(t, obj(t, ev["accepted_by"])["id"]) == c.id {
				first = c
			}
		}
		require.NotZero(t, first.id, "accepted_by is a callee: %v", ev)
		for _, c := range callees {
			if c.id != first.id {
				checkJoined(t, alice, id, c)
			}
		}
		assert.Len(t, participantIDs(t, s.activeCall(t, u.alice, g)), 5)
	})
}

// Issue case 2: one callee's decline in a group is that callee's answer
// only; the caller's client is not told to close the call, and when bob
// then accepts, alice gets call_accepted and offers to him.
func TestCallGroupOneDecline(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		for _, how := range []string{"REST", "socket"} {
			t.Run(how, func(t *testing.T) {
				u := s.freshUsers()
				g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol, u.dave)["id"])
				alice, bob, carol, dave := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true), s.callClient(t, u.dave, true)
				watch := s.convWatcher(t, u.bob, g)

				id := num(t, s.startCall(t, u.alice, g, "audio")["id"])
				checkIncoming(t, bob, id, g, u.alice, "audio")
				checkIncoming(t, carol, id, g, u.alice, "audio")
				if how == "REST" {
					dec := s.declineCall(t, u.carol, g, id)
					assert.Equal(t, "ringing", dec["status"], "bob and dave may still answer")
				} else {
					callAction(carol, "decline_call", id)
				}
				checkParticipantDeclined(t, alice, callIdent, id, u.carol)
				checkParticipantDeclined(t, watch, convIdent(g), id, u.carol)
				alice.expectNone(t, disturbing(id, 0), wsQuiet)
				bob.expectNone(t, disturbing(id, 0), 0)
				watch.expectNone(t, onIdent(convIdent(g), ofType("call_declined")), 0)
				assert.Equal(t, "ringing", s.activeCall(t, u.bob, g)["status"])

				// bob answers the call that still rings for him.
				s.acceptCall(t, u.bob, g, id)
				checkAccepted(t, alice, id, u.bob)
				expectAnsweredByOther(t, carol, id) // her other tabs may still ring
				expectAnsweredByOther(t, dave, id)
				sendSignal(alice, id, u.bob.id, offerSignal)
				expectSignal(t, bob, id, u.alice.id, offerSignal)
				assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, s.activeCall(t, u.alice, g)))

				// dave's decline comes too late: the call is no longer ringing.
				r := s.do("PUT", declinePath(g, id), u.dave.token, nil)
				assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
				assert.JSONEq(t, notRingingBody, string(r.raw))
				alice.expectNone(t, disturbing(id, u.bob.id), wsQuiet)

				s.endCall(t, u.bob, g, id)
				exactly(t, endedEvent(id), alice.expectMessage(t, callIdent, isHungUp(id)))
				assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "audio", "ended", true)
			})
		}

		t.Run("every callee declines", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			s.declineCall(t, u.carol, g, id)
			checkParticipantDeclined(t, alice, callIdent, id, u.carol)
			s.declineCall(t, u.carol, g, id) // again: nothing new
			noCall(t, alice, "participant_declined", id)
			callAction(bob, "decline_call", id)
			checkDeclined(t, alice, callIdent, id, u.bob)
			exactly(t, endedEvent(id), alice.expectMessage(t, callIdent, isHungUp(id)))
			noCall(t, alice, "participant_declined", id)
			assertCallLog(t, s.oneCallLog(t, u.alice, g, id), id, u.alice.id, "video", "declined", false)
		})
	})
}

// waitNoActiveCall polls until the conversation has no ongoing call.
func (s *stack) waitNoActiveCall(t *testing.T, a account, cid int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := s.do("GET", activeCallPath(cid), a.token, nil)
		if r.status == http.StatusNotFound {
			return
		}
		require.True(t, time.Now().Before(deadline), "the call still goes on after %s: %s", within, r.raw)
		time.Sleep(100 * time.Millisecond)
	}
}

// Issue case 3: calls whose people are gone do not block new calls.
func TestCallOrphaned(t *testing.T) {
	const grace = time.Second
	eachMode(t, func(t *testing.T, m mode) {
		cfg := raised(m.config(t), "register_ip")
		cfg.CallLeaveGrace = grace
		s := start(t, cfg)

		t.Run("a participant offline for the grace period leaves; one left ends the call", func(t *testing.T) {
			t.Parallel()
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob, carol := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true)
			watch := s.convWatcher(t, u.alice, g)
			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			s.acceptCall(t, u.bob, g, id)
			s.acceptCall(t, u.carol, g, id)
			checkJoined(t, alice, id, u.carol)

			// carol's tab crashes: she leaves after the grace period, the call goes on.
			gone := time.Now()
			carol.close()
			ev := alice.expectMessage(t, callIdent, callEvent("participant_left", id))
			exactly(t, leftEvent(id, u.carol.id), ev)
			assert.GreaterOrEqual(t, time.Since(gone), grace, "not before the grace period")
			exactly(t, leftEvent(id, u.carol.id), bob.expectMessage(t, callIdent, callEvent("participant_left", id)))
			act := s.activeCall(t, u.alice, g)
			assert.Equal(t, "active", act["status"])
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, act))

			// bob's goes too: alice alone, the call ends, logged once.
			bob.close()
			s.waitNoActiveCall(t, u.alice, g, 10*time.Second)
			exactly(t, endedEvent(id), alice.expectMessage(t, callIdent, isHungUp(id)))
			assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "video", "ended", true)
			time.Sleep(2 * grace)
			assert.Len(t, s.callLogs(t, u.alice, g, id), 1)
			s.startCall(t, u.bob, g, "audio")
		})

		t.Run("a DM whose callee's sockets are gone ends", func(t *testing.T) {
			t.Parallel()
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
			callAction(bob, "accept_call", id)
			checkAccepted(t, alice, id, u.bob)
			bob.close()
			s.waitNoActiveCall(t, u.alice, cid, 10*time.Second)
			exactly(t, endedEvent(id), alice.expectMessage(t, callIdent, isHungUp(id)))
			assertCallLog(t, s.oneCallLog(t, u.alice, cid, id), id, u.alice.id, "audio", "ended", true)
		})
	})

	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip")) // the default grace: the sweeper stays out of it

		t.Run("a new call replaces an active one nobody is connected to", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			watch := s.convWatcher(t, u.carol, g)
			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			s.acceptCall(t, u.bob, g, id)

			// People are in it: 409.
			r := s.do("POST", callsPath(g), u.carol.token, callBody("audio"))
			assert.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
			assert.JSONEq(t, callInProgressBody, string(r.raw))

			// Both leave without hanging up (a crash, a reload that is not back yet).
			alice.close()
			bob.close()
			require.Eventually(t, func() bool {
				r = s.do("POST", callsPath(g), u.carol.token, callBody("audio"))
				return r.status != http.StatusConflict
			}, 5*time.Second, 50*time.Millisecond, "the orphaned call still blocks: %s", r.raw)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			next := assertCallSession(t, dataOf(t, r), g, u.carol.id, "audio")
			assert.NotEqual(t, id, num(t, next["id"]))
			assert.Equal(t, num(t, next["id"]), num(t, s.activeCall(t, u.carol, g)["id"]))
			assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "video", "ended", true)
			assert.Len(t, s.callLogs(t, u.carol, g, id), 1)
		})

		t.Run("a ringing call is not replaced", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			s.startCall(t, u.alice, cid, "audio") // alice has no socket at all
			r := s.do("POST", callsPath(cid), u.bob.token, callBody("audio"))
			assert.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
		})
	})
}

// Two instances sweep the same call: the participant gone offline leaves,
// and the call ends, once, with one log.
func TestCallOrphanedTwoInstances(t *testing.T) {
	i := slices.IndexFunc(modes, func(m mode) bool { return m.name == "real" })
	require.GreaterOrEqual(t, i, 0)
	cfg := raised(modes[i].config(t), "register_ip")
	cfg.CallLeaveGrace = time.Second
	s1 := start(t, cfg)
	s2 := start(t, cfg)
	u := s1.freshUsers()
	cid := num(t, s1.createDirect(t, u.alice, u.bob)["id"])
	alice, bob := s1.callClient(t, u.alice, true), s2.callClient(t, u.bob, true)
	watch := s2.convWatcher(t, u.alice, cid)
	id := num(t, s1.startCall(t, u.alice, cid, "video")["id"])
	s2.acceptCall(t, u.bob, cid, id)
	checkAccepted(t, alice, id, u.bob)

	bob.close()
	s1.waitNoActiveCall(t, u.alice, cid, 10*time.Second)
	exactly(t, endedEvent(id), alice.expectMessage(t, callIdent, isHungUp(id)))
	assertCallLog(t, expectLog(t, watch, cid, id), id, u.alice.id, "video", "ended", true)
	time.Sleep(2 * time.Second) // both sweepers have had their turn
	noCall(t, alice, "call_ended", id)
	assert.Len(t, s2.callLogs(t, u.alice, cid, id), 1)
}
