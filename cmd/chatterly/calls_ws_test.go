package main_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callAction performs a CallChannel action naming a call.
func callAction(c *wsClient, action string, callID int64) {
	c.t.Helper()
	c.perform(callIdent, map[string]any{"action": action, "call_session_id": callID})
}

// The CallChannel actions do what their REST twins do.
func TestCallChannelActions(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))

		t.Run("accept_call and end_call", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			watch := s.convWatcher(t, u.alice, cid)

			id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
			checkIncoming(t, bob, id, cid, u.alice, "audio")
			callAction(bob, "accept_call", id)
			checkAccepted(t, alice, id, u.bob)
			act := s.activeCall(t, u.alice, cid)
			assert.Equal(t, "active", act["status"])
			assertTimestamp(t, act["started_at"], "accept_call stamps started_at")
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, act))

			// The callee hangs up: in a DM that ends the call.
			callAction(bob, "end_call", id)
			exactly(t, endedEvent(id), expectCall(t, alice, "call_ended", id))
			noCall(t, bob, "call_ended", id)
			cs := assertCallLog(t, expectLog(t, watch, cid, id), id, u.alice.id, "audio", "ended", true)
			assert.Equal(t, act["started_at"], cs["started_at"])
			s.noActiveCall(t, u.bob, cid)

			// Repeating actions on an ended call changes nothing.
			callAction(alice, "end_call", id)
			callAction(bob, "accept_call", id)
			callAction(bob, "decline_call", id)
			noCall(t, bob, "call_ended", id)
			noCall(t, alice, "call_accepted", id)
			noCall(t, alice, "call_declined", id)
			watch.expectNone(t, onIdent(convIdent(cid), ofType("new_message")), wsQuiet)
			assert.Len(t, s.callLogs(t, u.alice, cid, id), 1)
			s.noActiveCall(t, u.bob, cid)
		})

		t.Run("decline_call", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			watch := s.convWatcher(t, u.bob, cid)

			id := num(t, s.startCall(t, u.alice, cid, "video")["id"])
			checkIncoming(t, bob, id, cid, u.alice, "video")
			callAction(bob, "decline_call", id)
			checkDeclined(t, alice, callIdent, id, u.bob)
			checkDeclined(t, watch, convIdent(cid), id, u.bob)
			assertCallLog(t, expectLog(t, watch, cid, id), id, u.alice.id, "video", "declined", false)
			assert.Len(t, s.callLogs(t, u.alice, cid, id), 1)
			s.noActiveCall(t, u.alice, cid)
		})

		t.Run("the initiator's end_call while ringing", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, false)
			watch := s.convWatcher(t, u.bob, cid)

			id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
			checkIncoming(t, bob, id, cid, u.alice, "audio")
			callAction(alice, "end_call", id)
			exactly(t, endedEvent(id), expectCall(t, bob, "call_ended", id))
			noCall(t, alice, "call_ended", id)
			cs := assertCallLog(t, expectLog(t, watch, cid, id), id, u.alice.id, "audio", "ended", false)
			assert.Nil(t, cs["duration"])
			s.noActiveCall(t, u.alice, cid)
		})

		t.Run("group: late join and leave over the socket", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob, carol := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true)
			watch := s.convWatcher(t, u.carol, g)

			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			callAction(bob, "accept_call", id)
			checkAccepted(t, alice, id, u.bob)
			expectAnsweredByOther(t, carol, id)
			startedAt := s.activeCall(t, u.alice, g)["started_at"]

			callAction(carol, "accept_call", id)
			checkJoined(t, alice, id, u.carol)
			checkJoined(t, bob, id, u.carol)
			noCall(t, alice, "call_accepted", id)
			noCall(t, carol, "participant_joined", id)
			act := s.activeCall(t, u.bob, g)
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id, u.carol.id}, participantIDs(t, act))
			assert.Equal(t, startedAt, act["started_at"], "started_at is stamped once")

			// bob leaves; alice and carol go on.
			callAction(bob, "end_call", id)
			exactly(t, leftEvent(id, u.bob.id), expectCall(t, alice, "participant_left", id))
			exactly(t, leftEvent(id, u.bob.id), expectCall(t, carol, "participant_left", id))
			noCall(t, bob, "participant_left", id)
			assert.ElementsMatch(t, []int64{u.alice.id, u.carol.id}, participantIDs(t, s.activeCall(t, u.alice, g)))

			carol.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": id, "camera_off": true})
			exactly(t, cameraEvent(id, u.carol.id, true), expectCall(t, alice, "participant_camera_toggled", id))
			noCall(t, bob, "participant_camera_toggled", id)

			// The initiator hangs up for everyone, bob included (still a member).
			callAction(alice, "end_call", id)
			exactly(t, endedEvent(id), expectCall(t, bob, "call_ended", id))
			exactly(t, endedEvent(id), expectCall(t, carol, "call_ended", id))
			noCall(t, alice, "call_ended", id)
			assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "video", "ended", true)
			assert.Len(t, s.callLogs(t, u.bob, g, id), 1)
			s.noActiveCall(t, u.carol, g)
		})

		t.Run("signals and toggles", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, cid, "video")["id"])
			checkIncoming(t, bob, id, cid, u.alice, "video")

			// While it rings, the caller and the callee may already negotiate.
			sendSignal(alice, id, u.bob.id, offerSignal)
			expectSignal(t, bob, id, u.alice.id, offerSignal)
			sendSignal(bob, id, u.alice.id, iceSignal)
			expectSignal(t, alice, id, u.bob.id, iceSignal)

			callAction(bob, "accept_call", id)
			checkAccepted(t, alice, id, u.bob)
			sendSignal(bob, id, u.alice.id, answerSignal)
			expectSignal(t, alice, id, u.bob.id, answerSignal)
			for _, sig := range []string{
				iceSignal,
				`{"type":"ice_candidate","candidate":{"candidate":"candidate:1 1 UDP 2122252543 192.168.1.20 51012 typ host","sdpMid":"1","sdpMLineIndex":1,"usernameFragment":null}}`,
				`{"type":"ice_candidate","candidate":null}`,
				`{"type":"offer","sdp":"v=0\r\ns=R\u00e9union caf\u00e9 \u2615\r\n","extra":[1,2.50,{"nested":true}]}`,
				`{"type":"renegotiate","sdp":"v=0\r\ns=Ünïcödé 会议\r\n"}`,
			} {
				sendSignal(alice, id, u.bob.id, sig)
				expectSignal(t, bob, id, u.alice.id, sig)
			}

			for _, on := range []bool{true, false} {
				alice.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": id, "muted": on})
				exactly(t, mutedEvent(id, u.alice.id, on), expectCall(t, bob, "participant_muted", id))
				bob.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": id, "camera_off": on})
				exactly(t, cameraEvent(id, u.bob.id, on), expectCall(t, alice, "participant_camera_toggled", id))
			}
			noCall(t, alice, "participant_muted", id)
			noCall(t, bob, "participant_camera_toggled", id)
			noSignal(t, alice, id)
		})

		// The client stringifies the signal as is: characters that an HTML-safe
		// JSON encoder would escape must come out as they went in.
		t.Run("signal with <, > and & is relayed byte for byte", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, cid, "video")["id"])
			s.acceptCall(t, u.bob, cid, id)
			sig := `{"type":"offer","sdp":"v=0\r\ns=Tom & Jerry <call>\r\ni=a->b\r\n"}`
			sendSignal(alice, id, u.bob.id, sig)
			expectSignal(t, bob, id, u.alice.id, sig)
		})
	})
}

// REST end, socket end_call, declines and accepts race for one call: it ends
// once, with one log.
func TestCallEndRace(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
		alice, bob := s.callClient(t, u.alice, false), s.callClient(t, u.bob, true)
		alice2, bob2 := s.callClient(t, u.alice, false), s.callClient(t, u.bob, false)
		watch := s.convWatcher(t, u.alice, cid)

		var ids []int64
		for round := range 6 {
			id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
			ids = append(ids, id)
			checkIncoming(t, bob, id, cid, u.alice, "audio")
			if round%2 == 1 {
				// Half the rounds race an active call, half a ringing one.
				s.acceptCall(t, u.bob, cid, id)
			}

			type result struct {
				what string
				r    response
			}
			results := make(chan result, 16)
			var wg sync.WaitGroup
			rest := func(what, method, path string, a account) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results <- result{what, s.do(method, path, a.token, nil)}
				}()
			}
			sock := func(c *wsClient, action string) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					callAction(c, action, id)
				}()
			}
			rest("alice DELETE", "DELETE", callPath(cid, id), u.alice)
			sock(alice, "end_call")
			rest("bob decline", "PUT", declinePath(cid, id), u.bob)
			sock(bob, "decline_call")
			rest("bob accept", "PUT", acceptPath(cid, id), u.bob)
			sock(bob2, "accept_call")
			rest("bob DELETE", "DELETE", callPath(cid, id), u.bob)
			sock(bob, "end_call")
			sock(alice2, "end_call")
			rest("alice DELETE again", "DELETE", callPath(cid, id), u.alice)
			wg.Wait()
			close(results)
			for res := range results {
				switch res.what {
				case "alice DELETE", "bob DELETE", "alice DELETE again":
					assert.Equal(t, http.StatusOK, res.r.status, "%s: %s", res.what, res.r.raw)
					assert.JSONEq(t, callEndedBody, string(res.r.raw))
				default:
					if res.r.status == http.StatusOK {
						assert.ElementsMatch(t, callSessionKeys, keys(res.r.json(t)), "%s: %s", res.what, res.r.raw)
					} else {
						assert.Equal(t, http.StatusUnprocessableEntity, res.r.status, "%s: %s", res.what, res.r.raw)
						assert.JSONEq(t, notRingingBody, string(res.r.raw))
					}
				}
			}

			// alice's REST DELETE has returned, so the call is over.
			s.noActiveCall(t, u.bob, cid)
			logMsg := expectLog(t, watch, cid, id)
			cs := obj(t, logMsg["call_session"])
			assert.Contains(t, []any{"ended", "declined"}, cs["status"])
			assertCallLog(t, logMsg, id, u.alice.id, "audio", cs["status"].(string), cs["started_at"] != nil)
		}

		// Let stragglers land, then count.
		time.Sleep(wsQuiet)
		for _, id := range ids {
			assert.Len(t, s.callLogs(t, u.alice, cid, id), 1, "call %d: one log", id)
			watch.expectNone(t, onIdent(convIdent(cid), isCallLog(id)), 0)
		}
		require.Len(t, ids, 6)
	})
}
