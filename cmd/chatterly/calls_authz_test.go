package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callFixture is a fresh set of actors (see chatUsers) with a ringing call in
// each of their conversations: gc by alice in g (alice, bob, carol), hc by
// alice in h (alice, dave), dc by eve in the DM d (eve, frank); e is a group
// of bob and carol without a call.
type callFixture struct {
	chatUsers
	g, h, d, e    int64
	gc, hc, dc    int64
	gcStatus      any
	aliceCalls    *eventStream
	bobCalls      *eventStream
	conversationG *eventStream
}

func (s *stack) callFixture(t *testing.T) callFixture {
	t.Helper()
	f := callFixture{chatUsers: s.freshUsers()}
	u := f.chatUsers
	f.g = num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
	f.h = num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
	f.d = num(t, s.createDirect(t, u.eve, u.frank)["id"])
	f.e = num(t, s.createGroup(t, u.bob, "e", u.carol)["id"])
	f.gc = num(t, s.startCall(t, u.alice, f.g, "audio")["id"])
	f.hc = num(t, s.startCall(t, u.alice, f.h, "video")["id"])
	f.dc = num(t, s.startCall(t, u.eve, f.d, "audio")["id"])
	f.gcStatus = s.activeCall(t, u.alice, f.g)["status"]
	f.aliceCalls = s.subscribe(t, "calls_user_"+itoa(u.alice.id))
	f.bobCalls = s.subscribe(t, "calls_user_"+itoa(u.bob.id))
	f.conversationG = s.subscribe(t, convStream(f.g))
	return f
}

// untouched checks that gc still rings as before, with alice alone in it,
// that nobody heard of anything, and that no call log was written.
func (f callFixture) untouched(t *testing.T, s *stack) {
	t.Helper()
	act := s.activeCall(t, f.alice, f.g)
	assert.Equal(t, f.gc, num(t, act["id"]))
	assert.Equal(t, f.gcStatus, act["status"])
	assert.Nil(t, act["started_at"])
	assert.Equal(t, []int64{f.alice.id}, participantIDs(t, act))
	for _, c := range []struct {
		cid, call int64
		who       account
	}{{f.h, f.hc, f.alice}, {f.d, f.dc, f.eve}} {
		assert.Equal(t, c.call, num(t, s.activeCall(t, c.who, c.cid)["id"]), "the other calls still ring")
	}
	assert.Empty(t, s.callLogs(t, f.bob, f.g, f.gc))
	assert.Empty(t, s.callLogs(t, f.alice, f.h, f.hc))
	assert.Empty(t, s.callLogs(t, f.eve, f.d, f.dc))
	// One quiet period for the three streams.
	time.Sleep(quiet)
	for _, e := range []*eventStream{f.aliceCalls, f.bobCalls, f.conversationG} {
		select {
		case p := <-e.ch:
			t.Errorf("unexpected event on %s: %s", e.name, p)
		default:
		}
	}
}

// Who may do what to a call over REST.
func TestCallAuthorization(t *testing.T) {
	type req struct {
		as           string
		method, path string
		body         any
	}
	cases := []struct {
		name   string
		req    func(f callFixture) req
		status int
		body   string
	}{
		// Non-members: every route is 404, whether or not a call rings.
		{"non-member initiates", func(f callFixture) req { return req{"dave", "POST", callsPath(f.g), callBody("audio")} }, 404, notFound},
		{"non-member initiates where no call rings", func(f callFixture) req { return req{"dave", "POST", callsPath(f.e), callBody("audio")} }, 404, notFound},
		{"non-member reads the active call", func(f callFixture) req { return req{"dave", "GET", activeCallPath(f.g), nil} }, 404, notFound},
		{"non-member accepts", func(f callFixture) req { return req{"dave", "PUT", acceptPath(f.g, f.gc), nil} }, 404, notFound},
		{"non-member declines", func(f callFixture) req { return req{"dave", "PUT", declinePath(f.g, f.gc), nil} }, 404, notFound},
		{"non-member ends", func(f callFixture) req { return req{"dave", "DELETE", callPath(f.g, f.gc), nil} }, 404, notFound},
		{"DM outsider initiates", func(f callFixture) req { return req{"alice", "POST", callsPath(f.d), callBody("video")} }, 404, notFound},
		{"DM outsider reads the active call", func(f callFixture) req { return req{"alice", "GET", activeCallPath(f.d), nil} }, 404, notFound},
		{"DM outsider accepts", func(f callFixture) req { return req{"alice", "PUT", acceptPath(f.d, f.dc), nil} }, 404, notFound},
		{"DM outsider declines", func(f callFixture) req { return req{"alice", "PUT", declinePath(f.d, f.dc), nil} }, 404, notFound},
		{"DM outsider ends", func(f callFixture) req { return req{"alice", "DELETE", callPath(f.d, f.dc), nil} }, 404, notFound},

		// The initiator cannot answer their own call.
		{"initiator accepts own call", func(f callFixture) req { return req{"alice", "PUT", acceptPath(f.g, f.gc), nil} }, 403, notAuthorized},
		{"initiator declines own call", func(f callFixture) req { return req{"alice", "PUT", declinePath(f.g, f.gc), nil} }, 403, notAuthorized},
		{"DM initiator accepts own call", func(f callFixture) req { return req{"eve", "PUT", acceptPath(f.d, f.dc), nil} }, 403, notAuthorized},

		// A call id only exists under its own conversation's path.
		{"member accepts another conversation's call", func(f callFixture) req { return req{"bob", "PUT", acceptPath(f.g, f.hc), nil} }, 404, notFound},
		{"member declines another conversation's call", func(f callFixture) req { return req{"bob", "PUT", declinePath(f.g, f.hc), nil} }, 404, notFound},
		{"member ends another conversation's call", func(f callFixture) req { return req{"bob", "DELETE", callPath(f.g, f.hc), nil} }, 404, notFound},
		{"member of both ends a call under the wrong path", func(f callFixture) req { return req{"alice", "DELETE", callPath(f.g, f.hc), nil} }, 404, notFound},
		{"initiator under the wrong path is 404 before 403", func(f callFixture) req { return req{"alice", "PUT", acceptPath(f.h, f.gc), nil} }, 404, notFound},
		{"member of h accepts g's call under h", func(f callFixture) req { return req{"dave", "PUT", acceptPath(f.h, f.gc), nil} }, 404, notFound},
		{"member of h declines g's call under h", func(f callFixture) req { return req{"dave", "PUT", declinePath(f.h, f.gc), nil} }, 404, notFound},
		{"member of h ends g's call under h", func(f callFixture) req { return req{"dave", "DELETE", callPath(f.h, f.gc), nil} }, 404, notFound},
		{"DM member ends g's call under the DM", func(f callFixture) req { return req{"frank", "DELETE", callPath(f.d, f.gc), nil} }, 404, notFound},
		{"member accepts a call of a conversation without one", func(f callFixture) req { return req{"bob", "PUT", acceptPath(f.e, f.gc), nil} }, 404, notFound},

		// Calls that do not exist.
		{"accept a missing call", func(f callFixture) req { return req{"bob", "PUT", acceptPath(f.g, missingID), nil} }, 404, notFound},
		{"decline a missing call", func(f callFixture) req { return req{"bob", "PUT", declinePath(f.g, missingID), nil} }, 404, notFound},
		{"end a missing call", func(f callFixture) req { return req{"bob", "DELETE", callPath(f.g, missingID), nil} }, 404, notFound},
		{"no active call", func(f callFixture) req { return req{"bob", "GET", activeCallPath(f.e), nil} }, 404, notFound},
		{"missing conversation", func(f callFixture) req { return req{"bob", "POST", callsPath(missingID), callBody("audio")} }, 404, notFound},
		{"missing conversation's active call", func(f callFixture) req { return req{"bob", "GET", activeCallPath(missingID), nil} }, 404, notFound},

		// Signed out.
		{"no token", func(f callFixture) req { return req{"", "POST", callsPath(f.e), callBody("audio")} }, 401, ""},
		{"no token accepts", func(f callFixture) req { return req{"", "PUT", acceptPath(f.g, f.gc), nil} }, 401, ""},
	}
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		// Every case is refused, so they share one fixture: each checks at
		// once that g's call did not move, and the end that nothing at all did.
		f := s.callFixture(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				q := tc.req(f)
				token := ""
				if q.as != "" {
					token = f.byName(t, q.as).token
				}
				r := s.do(q.method, q.path, token, q.body)
				assert.Equal(t, tc.status, r.status, "%s %s as %s: %s", q.method, q.path, q.as, r.raw)
				if tc.body != "" {
					assert.JSONEq(t, tc.body, string(r.raw))
				}
				act := s.activeCall(t, f.alice, f.g)
				assert.Equal(t, f.gc, num(t, act["id"]), "g's call is untouched")
				assert.Equal(t, f.gcStatus, act["status"], "g's call is untouched")
				assert.Equal(t, []int64{f.alice.id}, participantIDs(t, act), "g's call is untouched")
			})
		}
		f.untouched(t, s)
		s.noActiveCall(t, f.bob, f.e)
	})
}

// Signals, toggles and call actions on the socket from people outside the
// call are dropped without a trace.
func TestCallSignalAuthorization(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
		h := num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
		alice, bob, carol, dave := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true), s.callClient(t, u.dave, true)
		watch := s.convWatcher(t, u.alice, g)
		gc := num(t, s.startCall(t, u.alice, g, "video")["id"])
		hc := num(t, s.startCall(t, u.alice, h, "audio")["id"])
		checkIncoming(t, bob, gc, g, u.alice, "video")
		checkIncoming(t, dave, hc, h, u.alice, "audio")

		t.Run("while ringing", func(t *testing.T) {
			// A non-member, naming g's call, to the initiator and to a callee.
			sendSignal(dave, gc, u.alice.id, offerSignal)
			sendSignal(dave, gc, u.bob.id, offerSignal)
			// The initiator to a non-member.
			sendSignal(alice, gc, u.dave.id, offerSignal)
			// A callee naming a call of a conversation they are not in.
			sendSignal(bob, hc, u.alice.id, offerSignal)
			noSignal(t, alice, gc)
			noSignal(t, bob, gc)
			noSignal(t, dave, gc)
			noSignal(t, alice, hc)
			// Between the caller and a callee it works, in both directions.
			sendSignal(alice, gc, u.bob.id, offerSignal)
			expectSignal(t, bob, gc, u.alice.id, offerSignal)
			sendSignal(carol, gc, u.alice.id, iceSignal)
			expectSignal(t, alice, gc, u.carol.id, iceSignal)
		})

		t.Run("non-member actions", func(t *testing.T) {
			for _, action := range []string{"accept_call", "decline_call", "end_call"} {
				callAction(dave, action, gc)
			}
			dave.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": gc, "muted": true})
			dave.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": gc, "camera_off": true})
			for _, c := range []*wsClient{alice, bob, carol} {
				c.expectNone(t, onIdent(callIdent, func(msg map[string]any) bool {
					id, _ := msg["call_session_id"].(float64)
					return int64(id) == gc && msg["type"] != "signal" && msg["type"] != "incoming_call"
				}), wsQuiet)
			}
			watch.expectNone(t, onIdent(convIdent(g), anyFrame), wsQuiet)
			act := s.activeCall(t, u.alice, g)
			assert.Contains(t, []any{"calling", "ringing"}, act["status"], "still ringing")
			assert.Equal(t, []int64{u.alice.id}, participantIDs(t, act))
			assert.Empty(t, s.callLogs(t, u.alice, g, gc))
		})

		t.Run("once active, only participants", func(t *testing.T) {
			s.acceptCall(t, u.bob, g, gc)
			checkAccepted(t, alice, gc, u.bob)
			// carol is a member who has not joined.
			sendSignal(carol, gc, u.alice.id, offerSignal)
			sendSignal(alice, gc, u.carol.id, offerSignal)
			sendSignal(bob, gc, u.carol.id, iceSignal)
			sendSignal(dave, gc, u.bob.id, iceSignal)
			carol.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": gc, "muted": true})
			dave.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": gc, "camera_off": true})
			noSignal(t, alice, gc)
			noSignal(t, carol, gc)
			noSignal(t, bob, gc)
			noCall(t, alice, "participant_muted", gc)
			noCall(t, bob, "participant_muted", gc)
			noCall(t, alice, "participant_camera_toggled", gc)
			noCall(t, bob, "participant_camera_toggled", gc)

			sendSignal(bob, gc, u.alice.id, answerSignal)
			expectSignal(t, alice, gc, u.bob.id, answerSignal)
		})

		t.Run("after the end, nobody", func(t *testing.T) {
			s.endCall(t, u.alice, g, gc)
			expectCall(t, bob, "call_ended", gc)
			sendSignal(bob, gc, u.alice.id, iceSignal)
			sendSignal(alice, gc, u.bob.id, iceSignal)
			noSignal(t, alice, gc)
			noSignal(t, bob, gc)
			bob.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": gc, "muted": true})
			noCall(t, alice, "participant_muted", gc)
		})
	})
}

// Path ids that are not positive integers below 2^53 are 404, never 500.
func TestCallBadPathIDs(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		f := s.callFixture(t)
		bad := []string{"abc", "-1", "0", "1.5", "1e3", "0x10", "99999999999999999999", "9223372036854775808", "9007199254740993", "1%20OR%201=1", "%27", "1;DROP"}
		g, gc := itoa(f.g), itoa(f.gc)
		for _, id := range bad {
			for _, rt := range []struct {
				method, path string
				body         any
			}{
				{"POST", "/api/v1/conversations/" + id + "/calls", callBody("audio")},
				{"GET", "/api/v1/conversations/" + id + "/calls/active", nil},
				{"PUT", "/api/v1/conversations/" + id + "/calls/" + gc + "/accept", nil},
				{"PUT", "/api/v1/conversations/" + g + "/calls/" + id + "/accept", nil},
				{"PUT", "/api/v1/conversations/" + id + "/calls/" + gc + "/decline", nil},
				{"PUT", "/api/v1/conversations/" + g + "/calls/" + id + "/decline", nil},
				{"DELETE", "/api/v1/conversations/" + id + "/calls/" + gc, nil},
				{"DELETE", "/api/v1/conversations/" + g + "/calls/" + id, nil},
			} {
				t.Run(rt.method+" "+rt.path, func(t *testing.T) {
					for _, who := range []account{f.alice, f.bob} {
						r := s.do(rt.method, rt.path, who.token, rt.body)
						assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
						assert.JSONEq(t, notFound, string(r.raw))
					}
				})
			}
		}
		f.untouched(t, s)
	})
}

// Bad initiation bodies: 422 for a bad call_type, 400 for bad JSON; nothing rings.
func TestCallBadInput(t *testing.T) {
	cases := []chatBad{
		{name: "unknown call_type", body: callBody("voice"), status: 422},
		{name: "call_type in capitals", body: callBody("VIDEO"), status: 422},
		{name: "call_type with spaces", body: callBody(" audio "), status: 422},
		{name: "call_type a number", body: map[string]any{"call": map[string]any{"call_type": 1}}, status: 422, want: "Call type"},
		{name: "call_type a number, top-level", body: map[string]any{"call_type": 0}, status: 422, want: "Call type"},
		{name: "call_type a boolean", body: map[string]any{"call": map[string]any{"call_type": true}}, status: 422, want: "Call type"},
		{name: "call_type an array", body: map[string]any{"call": map[string]any{"call_type": []string{"audio"}}}, status: 422, want: "Call type"},
		{name: "call_type an object", body: map[string]any{"call": map[string]any{"call_type": map[string]any{"audio": true}}}, status: 422, want: "Call type"},
		{name: "malformed JSON", body: `{"call":{"call_type":"audio"}`, status: 400},
		{name: "not JSON", body: `call_type=audio`, status: 400},
		{name: "trailing garbage", body: `{"call":{"call_type":"audio"}} x`, status: 400},
		{name: "body is an array", body: `[{"call":{"call_type":"audio"}}]`},
	}
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
		bobCalls := s.subscribe(t, "calls_user_"+itoa(u.bob.id))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", callsPath(cid), u.alice.token, tc.body)
				checkBad(t, r, tc.status, tc.want)
				if r.status == http.StatusCreated { // keep the cases apart
					s.endCall(t, u.alice, cid, num(t, dataOf(t, r)["id"]))
				}
				if tc.status == 422 && tc.want == "" {
					assert.JSONEq(t, badCallTypeBody, string(r.raw))
				}
				s.noActiveCall(t, u.bob, cid)
			})
		}
		bobCalls.none(t, "no bad request rings")

		t.Run("unknown fields are ignored, not assigned", func(t *testing.T) {
			r := s.do("POST", callsPath(cid), u.alice.token, map[string]any{"call": map[string]any{
				"call_type": "video", "status": "active", "initiator_id": u.bob.id, "conversation_id": missingID, "id": missingID, "started_at": "2020-01-01T00:00:00.000Z",
			}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			c := assertCallSession(t, dataOf(t, r), cid, u.alice.id, "video")
			assert.NotEqual(t, missingID, num(t, c["id"]))
			assert.Contains(t, []any{"calling", "ringing"}, c["status"])
			assert.Nil(t, s.activeCall(t, u.bob, cid)["started_at"])
		})
	})
}
