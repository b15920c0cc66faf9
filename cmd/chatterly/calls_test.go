package main_test

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API credential is defined on HMAC-SHA1
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// The exact key sets of the call blueprints.
var (
	callSessionKeys = []string{"id", "conversation_id", "initiator_id", "call_type", "status", "created_at"}
	activeCallKeys  = []string{"id", "conversation_id", "initiator_id", "call_type", "status", "created_at", "started_at", "participants"}
	callLogKeys     = []string{"id", "call_type", "status", "started_at", "ended_at", "duration", "initiator_id"}
)

// The exact bodies the call routes answer with.
const (
	callInProgressBody = `{"error":"A call is already in progress in this conversation"}`
	notRingingBody     = `{"error":"Call is no longer ringing"}`
	callEndedBody      = `{"message":"Call ended"}`
	badCallTypeBody    = `{"errors":["Call type is not included in the list"]}`
)

// shortRing is the ring timeout of the tests of the missed path.
const shortRing = 2 * time.Second

// WebRTC signals as the web client sends them (JSON.stringify: compact, keys
// in the order the browser built them, not sorted).
const (
	offerSignal  = `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g1k\r\na=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24\r\na=setup:actpass\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"}`
	answerSignal = `{"type":"answer","sdp":"v=0\r\no=- 7025913837473523418 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:Zq3k\r\na=ice-pwd:Rj8q0dz2Bm/pN+7uW1yHcE5s\r\na=setup:active\r\na=mid:0\r\n"}`
	iceSignal    = `{"type":"ice_candidate","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag F7gI network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"F7gI"}}`
)

func callsPath(cid int64) string           { return convPath(cid) + "/calls" }
func callPath(cid, callID int64) string    { return callsPath(cid) + "/" + itoa(callID) }
func acceptPath(cid, callID int64) string  { return callPath(cid, callID) + "/accept" }
func declinePath(cid, callID int64) string { return callPath(cid, callID) + "/decline" }
func activeCallPath(cid int64) string      { return callsPath(cid) + "/active" }
func callBody(callType string) map[string]any {
	return map[string]any{"call": map[string]any{"call_type": callType}}
}

// assertCallSession checks the plain call session blueprint.
func assertCallSession(t *testing.T, v any, convID, initiatorID int64, callType string) map[string]any {
	t.Helper()
	c := obj(t, v)
	assert.ElementsMatch(t, callSessionKeys, keys(c), "call session: %v", c)
	num(t, c["id"])
	assert.Equal(t, convID, num(t, c["conversation_id"]), "conversation_id")
	assert.Equal(t, initiatorID, num(t, c["initiator_id"]), "initiator_id")
	assert.Equal(t, callType, c["call_type"])
	assert.Contains(t, []any{"calling", "ringing", "active", "ended", "declined", "missed"}, c["status"])
	assertTimestamp(t, c["created_at"], "call created_at")
	return c
}

// startCall initiates a call as a and returns the session.
func (s *stack) startCall(t *testing.T, a account, cid int64, callType string) map[string]any {
	t.Helper()
	r := s.do("POST", callsPath(cid), a.token, callBody(callType))
	require.Equal(t, http.StatusCreated, r.status, "initiate a call: %s", r.raw)
	c := assertCallSession(t, dataOf(t, r), cid, a.id, callType)
	assert.Contains(t, []any{"calling", "ringing"}, c["status"], "a new call rings")
	return c
}

// activeCall reads the conversation's ongoing call as a and checks its shape.
func (s *stack) activeCall(t *testing.T, a account, cid int64) map[string]any {
	t.Helper()
	r := s.do("GET", activeCallPath(cid), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "active call: %s", r.raw)
	c := r.json(t)
	assert.ElementsMatch(t, activeCallKeys, keys(c), "call with participants: %s", r.raw)
	assert.Equal(t, cid, num(t, c["conversation_id"]))
	assert.Contains(t, []any{"calling", "ringing", "active"}, c["status"], "only an ongoing call is active")
	assertTimestamp(t, c["created_at"], "call created_at")
	if c["started_at"] != nil {
		assertTimestamp(t, c["started_at"], "call started_at")
	}
	for _, p := range objs(t, c["participants"]) {
		assertUserPublic(t, p)
	}
	return c
}

// noActiveCall checks that the conversation has no ongoing call.
func (s *stack) noActiveCall(t *testing.T, a account, cid int64) {
	t.Helper()
	r := s.do("GET", activeCallPath(cid), a.token, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "no active call: %s", r.raw)
	assert.JSONEq(t, notFound, string(r.raw))
}

// participantIDs returns the ids of an active call's participants.
func participantIDs(t *testing.T, c map[string]any) []int64 {
	t.Helper()
	return idsOf(t, objs(t, c["participants"]))
}

// acceptCall accepts as a over REST and returns the session.
func (s *stack) acceptCall(t *testing.T, a account, cid, callID int64) map[string]any {
	t.Helper()
	r := s.do("PUT", acceptPath(cid, callID), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "accept: %s", r.raw)
	c := r.json(t)
	assert.ElementsMatch(t, callSessionKeys, keys(c), "accept answers the bare call session: %s", r.raw)
	assert.Equal(t, callID, num(t, c["id"]))
	assert.Equal(t, "active", c["status"])
	return c
}

// declineCall declines as a over REST and returns the session.
func (s *stack) declineCall(t *testing.T, a account, cid, callID int64) map[string]any {
	t.Helper()
	r := s.do("PUT", declinePath(cid, callID), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "decline: %s", r.raw)
	c := r.json(t)
	assert.ElementsMatch(t, callSessionKeys, keys(c), "decline answers the bare call session: %s", r.raw)
	assert.Equal(t, callID, num(t, c["id"]))
	return c
}

// endCall hangs up as a over REST.
func (s *stack) endCall(t *testing.T, a account, cid, callID int64) {
	t.Helper()
	r := s.do("DELETE", callPath(cid, callID), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "end: %s", r.raw)
	assert.JSONEq(t, callEndedBody, string(r.raw))
}

// callLogs returns the call messages of cid's history about callID, as a sees it.
func (s *stack) callLogs(t *testing.T, a account, cid, callID int64) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range s.allHistory(t, a, cid, 100) {
		if m["message_type"] != "call" {
			continue
		}
		cs, ok := m["call_session"].(map[string]any)
		if assert.True(t, ok, "a call message carries its call session: %v", m) && num(t, cs["id"]) == callID {
			out = append(out, m)
		}
	}
	return out
}

// oneCallLog checks that the history holds exactly one log of callID and returns it.
func (s *stack) oneCallLog(t *testing.T, a account, cid, callID int64) map[string]any {
	t.Helper()
	logs := s.callLogs(t, a, cid, callID)
	require.Len(t, logs, 1, "exactly one call log for call %d", callID)
	return logs[0]
}

// parseTS reads a contract timestamp.
func parseTS(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "want a timestamp, got %T %v", v, v)
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return ts
}

// assertCallLog checks a call log message: written by the initiator, with
// the call's final state; started tells whether the call was ever answered.
func assertCallLog(t *testing.T, msg any, callID, initiatorID int64, callType, status string, started bool) map[string]any {
	t.Helper()
	m := obj(t, msg)
	assertMessage(t, m)
	assert.Equal(t, "call", m["message_type"])
	assert.Equal(t, initiatorID, num(t, obj(t, m["user"])["id"]), "the log is attributed to the initiator")
	cs := obj(t, m["call_session"])
	assert.ElementsMatch(t, callLogKeys, keys(cs), "call_session of a call log: %v", cs)
	assert.Equal(t, callID, num(t, cs["id"]))
	assert.Equal(t, callType, cs["call_type"])
	assert.Equal(t, status, cs["status"])
	assert.Equal(t, initiatorID, num(t, cs["initiator_id"]))
	assertTimestamp(t, cs["ended_at"], "call ended_at")
	if !started {
		assert.Nil(t, cs["started_at"], "never answered: no started_at")
		assert.Nil(t, cs["duration"], "never answered: no duration")
		return cs
	}
	assertTimestamp(t, cs["started_at"], "call started_at")
	begin, end := parseTS(t, cs["started_at"]), parseTS(t, cs["ended_at"])
	assert.False(t, end.Before(begin), "ended_at %v before started_at %v", end, begin)
	d, ok := cs["duration"].(float64)
	if assert.True(t, ok, "duration is a number of seconds: %v", cs["duration"]) {
		assert.Equal(t, float64(int64(d)), d, "duration is whole seconds")
		// Timestamps are shown to the millisecond, so the rounding of the
		// stored ones may differ by one second at most.
		assert.InDelta(t, end.Sub(begin).Truncate(time.Second).Seconds(), d, 1, "duration is ended_at - started_at")
	}
	return cs
}

// callClient connects a and subscribes it to CallChannel; when online, to
// PresenceChannel too, which makes a online.
func (s *stack) callClient(t *testing.T, a account, online bool) *wsClient {
	t.Helper()
	c := s.cable(t, a)
	c.mustConfirm(t, callIdent)
	if online {
		c.mustConfirm(t, presenceIdent)
	}
	return c
}

// convWatcher connects a and subscribes it to the conversation.
func (s *stack) convWatcher(t *testing.T, a account, cid int64) *wsClient {
	t.Helper()
	c := s.cable(t, a)
	c.mustConfirm(t, convIdent(cid))
	return c
}

// callEvent matches events of type typ about callID.
func callEvent(typ string, callID int64) func(map[string]any) bool {
	return func(msg map[string]any) bool {
		id, _ := msg["call_session_id"].(float64)
		return msg["type"] == typ && int64(id) == callID
	}
}

// isCallLog matches the new_message of callID's log.
func isCallLog(callID int64) func(map[string]any) bool {
	return func(msg map[string]any) bool {
		if msg["type"] != "new_message" {
			return false
		}
		m, _ := msg["message"].(map[string]any)
		cs, _ := m["call_session"].(map[string]any)
		id, _ := cs["id"].(float64)
		return m["message_type"] == "call" && int64(id) == callID
	}
}

// expectCall waits for the event typ about callID on c's CallChannel.
func expectCall(t *testing.T, c *wsClient, typ string, callID int64) map[string]any {
	t.Helper()
	return c.expectMessage(t, callIdent, callEvent(typ, callID))
}

// noCall checks that c's CallChannel gets no event typ about callID for a while.
func noCall(t *testing.T, c *wsClient, typ string, callID int64) {
	t.Helper()
	c.expectNone(t, onIdent(callIdent, callEvent(typ, callID)), wsQuiet)
}

// expectLog waits for callID's log on c's subscription to cid, checks that
// no second one follows, and returns the message.
func expectLog(t *testing.T, c *wsClient, cid, callID int64) map[string]any {
	t.Helper()
	ev := c.expectMessage(t, convIdent(cid), isCallLog(callID))
	assert.ElementsMatch(t, []string{"type", "message"}, keys(ev), "new_message: %v", ev)
	c.expectNone(t, onIdent(convIdent(cid), isCallLog(callID)), wsQuiet)
	return obj(t, ev["message"])
}

// expectRaw is expect returning the frame itself, raw bytes included.
func (c *wsClient) expectRaw(t *testing.T, pred func(map[string]any) bool) wsFrame {
	t.Helper()
	for i, f := range c.backlog {
		if f.m != nil && pred(f.m) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f
		}
	}
	deadline := time.Now().Add(wsWait)
	for {
		f, ok := c.pull(time.Until(deadline))
		require.True(t, ok, "no matching frame within %s; queued: %v", wsWait, c.pending())
		require.NoError(t, f.err, "the connection ended; queued: %v", c.pending())
		if f.m != nil && pred(f.m) {
			return f
		}
		if !f.isPing() {
			c.backlog = append(c.backlog, f)
		}
	}
}

// performData runs a CallChannel action whose data is given as the exact
// JSON the browser would stringify.
func performData(c *wsClient, data string) {
	c.t.Helper()
	c.send(map[string]any{"command": "message", "identifier": callIdent, "data": data})
}

// sendSignal relays signal (raw JSON) from c's user to target.
func sendSignal(c *wsClient, callID, target int64, signal string) {
	c.t.Helper()
	performData(c, `{"action":"send_signal","target_user_id":`+itoa(target)+`,"call_session_id":`+itoa(callID)+`,"signal":`+signal+`}`)
}

// expectSignal waits for the signal from fromID on c and checks that it
// carries exactly the bytes that were sent.
func expectSignal(t *testing.T, c *wsClient, callID, fromID int64, signal string) {
	t.Helper()
	f := c.expectRaw(t, onIdent(callIdent, func(msg map[string]any) bool {
		from, _ := msg["from_user_id"].(float64)
		return callEvent("signal", callID)(msg) && int64(from) == fromID
	}))
	var frame map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(f.raw, &frame), "%s", f.raw)
	var msg map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(frame["message"], &msg), "%s", f.raw)
	got := make([]string, 0, len(msg))
	for k := range msg {
		got = append(got, k)
	}
	assert.ElementsMatch(t, []string{"type", "call_session_id", "from_user_id", "signal"}, got, "signal event: %s", f.raw)
	assert.Equal(t, signal, string(msg["signal"]), "the signal is relayed byte for byte")
}

// noSignal checks that c gets no signal about callID for a while.
func noSignal(t *testing.T, c *wsClient, callID int64) { t.Helper(); noCall(t, c, "signal", callID) }

// assertUserIs checks a User public object and its id.
func assertUserIs(t *testing.T, v any, a account) {
	t.Helper()
	assertUserPublic(t, v)
	assert.Equal(t, a.id, num(t, obj(t, v)["id"]), "the user: %v", v)
}

// exactly checks an event against its exact JSON.
func exactly(t *testing.T, want string, ev map[string]any) {
	t.Helper()
	assert.JSONEq(t, want, toJSON(t, ev))
}

func mutedEvent(callID, userID int64, on bool) string {
	return `{"type":"participant_muted","call_session_id":` + itoa(callID) + `,"user_id":` + itoa(userID) + `,"muted":` + strconv.FormatBool(on) + `}`
}

func cameraEvent(callID, userID int64, off bool) string {
	return `{"type":"participant_camera_toggled","call_session_id":` + itoa(callID) + `,"user_id":` + itoa(userID) + `,"camera_off":` + strconv.FormatBool(off) + `}`
}

func endedEvent(callID int64) string {
	return `{"type":"call_ended","call_session_id":` + itoa(callID) + `}`
}

func leftEvent(callID, userID int64) string {
	return `{"type":"participant_left","call_session_id":` + itoa(callID) + `,"user_id":` + itoa(userID) + `}`
}

// checkIncoming checks the incoming_call event c got for a call of caller.
func checkIncoming(t *testing.T, c *wsClient, callID, cid int64, caller account, callType string) {
	t.Helper()
	ev := expectCall(t, c, "incoming_call", callID)
	assert.ElementsMatch(t, []string{"type", "call_session_id", "caller", "call_type", "conversation_id"}, keys(ev), "incoming_call: %v", ev)
	assertUserIs(t, ev["caller"], caller)
	assert.Equal(t, callType, ev["call_type"])
	assert.Equal(t, cid, num(t, ev["conversation_id"]))
}

// checkAccepted checks the call_accepted the initiator's client c got.
func checkAccepted(t *testing.T, c *wsClient, callID int64, by account) {
	t.Helper()
	ev := c.expectMessage(t, callIdent, func(msg map[string]any) bool {
		u, _ := msg["accepted_by"].(map[string]any)
		id, _ := u["id"].(float64)
		return callEvent("call_accepted", callID)(msg) && int64(id) == by.id
	})
	assert.ElementsMatch(t, []string{"type", "call_session_id", "accepted_by"}, keys(ev), "call_accepted: %v", ev)
	assertUserIs(t, ev["accepted_by"], by)
}

// checkDeclined checks a call_declined event on identifier.
func checkDeclined(t *testing.T, c *wsClient, identifier string, callID int64, by account) {
	t.Helper()
	ev := c.expectMessage(t, identifier, func(msg map[string]any) bool {
		u, _ := msg["declined_by"].(map[string]any)
		id, _ := u["id"].(float64)
		return callEvent("call_declined", callID)(msg) && int64(id) == by.id
	})
	assert.ElementsMatch(t, []string{"type", "call_session_id", "declined_by"}, keys(ev), "call_declined: %v", ev)
	assertUserIs(t, ev["declined_by"], by)
}

// checkJoined checks the participant_joined event c got about who.
func checkJoined(t *testing.T, c *wsClient, callID int64, who account) {
	t.Helper()
	ev := c.expectMessage(t, callIdent, func(msg map[string]any) bool {
		u, _ := msg["user"].(map[string]any)
		id, _ := u["id"].(float64)
		return callEvent("participant_joined", callID)(msg) && int64(id) == who.id
	})
	assert.ElementsMatch(t, []string{"type", "call_session_id", "user"}, keys(ev), "participant_joined: %v", ev)
	assertUserIs(t, ev["user"], who)
}

// The two-user DM flow over REST and the CallChannel, as the web client runs it.
func TestCallDMFlow(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
		alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
		watch := s.convWatcher(t, u.alice, cid)

		// Initiate: bob is online, so the call rings.
		call := s.startCall(t, u.alice, cid, "video")
		id := num(t, call["id"])
		checkIncoming(t, bob, id, cid, u.alice, "video")
		noCall(t, alice, "incoming_call", id)
		act := s.activeCall(t, u.bob, cid)
		assert.Equal(t, id, num(t, act["id"]))
		assert.Equal(t, "ringing", act["status"], "a callee is online")
		assert.Equal(t, "video", act["call_type"])
		assert.Equal(t, u.alice.id, num(t, act["initiator_id"]))
		assert.Nil(t, act["started_at"], "not answered yet")
		assert.Equal(t, []int64{u.alice.id}, participantIDs(t, act), "the initiator is in the call")

		// Accept.
		acc := s.acceptCall(t, u.bob, cid, id)
		assertCallSession(t, acc, cid, u.alice.id, "video")
		checkAccepted(t, alice, id, u.bob)
		noCall(t, bob, "call_accepted", id)
		act = s.activeCall(t, u.alice, cid)
		assert.Equal(t, "active", act["status"])
		assertTimestamp(t, act["started_at"], "accepting stamps started_at")
		assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, act))
		startedAt := act["started_at"]

		// Offer, answer and ICE candidates, relayed byte for byte.
		sendSignal(alice, id, u.bob.id, offerSignal)
		expectSignal(t, bob, id, u.alice.id, offerSignal)
		sendSignal(bob, id, u.alice.id, answerSignal)
		expectSignal(t, alice, id, u.bob.id, answerSignal)
		sendSignal(alice, id, u.bob.id, iceSignal)
		expectSignal(t, bob, id, u.alice.id, iceSignal)
		sendSignal(bob, id, u.alice.id, iceSignal)
		expectSignal(t, alice, id, u.bob.id, iceSignal)
		noSignal(t, alice, id) // nobody hears their own signals
		noSignal(t, bob, id)

		// Mute and camera.
		bob.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": id, "muted": true})
		exactly(t, mutedEvent(id, u.bob.id, true), expectCall(t, alice, "participant_muted", id))
		alice.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": id, "camera_off": true})
		exactly(t, cameraEvent(id, u.alice.id, true), expectCall(t, bob, "participant_camera_toggled", id))
		bob.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": id, "muted": false})
		exactly(t, mutedEvent(id, u.bob.id, false), expectCall(t, alice, "participant_muted", id))
		noCall(t, bob, "participant_muted", id)
		noCall(t, alice, "participant_camera_toggled", id)

		// Talk for a second, so that the duration is not zero.
		time.Sleep(1100 * time.Millisecond)
		assert.Equal(t, startedAt, s.activeCall(t, u.bob, cid)["started_at"], "started_at does not move")

		// End.
		s.endCall(t, u.alice, cid, id)
		exactly(t, endedEvent(id), expectCall(t, bob, "call_ended", id))
		noCall(t, alice, "call_ended", id)
		logMsg := expectLog(t, watch, cid, id)
		cs := assertCallLog(t, logMsg, id, u.alice.id, "video", "ended", true)
		assert.Equal(t, startedAt, cs["started_at"], "the log keeps the call's started_at")
		assert.GreaterOrEqual(t, cs["duration"], float64(1), "the call lasted over a second")
		hist := s.oneCallLog(t, u.bob, cid, id)
		assertSameObject(t, hist, logMsg, "the broadcast log is the history's")
		s.noActiveCall(t, u.alice, cid)

		// An ended call stays ended, and ending it again changes nothing.
		r := s.do("PUT", acceptPath(cid, id), u.bob.token, nil)
		assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
		assert.JSONEq(t, notRingingBody, string(r.raw))
		r = s.do("PUT", declinePath(cid, id), u.bob.token, nil)
		assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
		assert.JSONEq(t, notRingingBody, string(r.raw))
		s.endCall(t, u.bob, cid, id)
		s.endCall(t, u.alice, cid, id)
		noCall(t, alice, "call_ended", id)
		noCall(t, bob, "call_ended", id)
		watch.expectNone(t, onIdent(convIdent(cid), ofType("new_message")), wsQuiet)
		assert.Len(t, s.callLogs(t, u.alice, cid, id), 1, "still one log")
		s.noActiveCall(t, u.bob, cid)

		// Signals about an ended call go nowhere.
		sendSignal(alice, id, u.bob.id, iceSignal)
		noSignal(t, bob, id)

		// A new call may start once the last one ended, from either side.
		next := s.startCall(t, u.bob, cid, "audio")
		checkIncoming(t, alice, num(t, next["id"]), cid, u.bob, "audio")
		assert.NotEqual(t, id, num(t, next["id"]))
	})
}

// Declining: a DM ends as declined at once; a group when every callee declined.
func TestCallDeclined(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		t.Run("direct", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice := s.callClient(t, u.alice, true)
			bob := s.callClient(t, u.bob, false) // subscribed to calls, not present
			watch := s.convWatcher(t, u.bob, cid)

			call := s.startCall(t, u.alice, cid, "audio")
			id := num(t, call["id"])
			checkIncoming(t, bob, id, cid, u.alice, "audio")
			assert.Equal(t, "calling", s.activeCall(t, u.alice, cid)["status"], "no callee is online")

			dec := s.declineCall(t, u.bob, cid, id)
			assert.Equal(t, "declined", dec["status"])
			checkDeclined(t, alice, callIdent, id, u.bob)
			checkDeclined(t, watch, convIdent(cid), id, u.bob)
			logMsg := expectLog(t, watch, cid, id)
			assertCallLog(t, logMsg, id, u.alice.id, "audio", "declined", false)
			assertSameObject(t, s.oneCallLog(t, u.alice, cid, id), logMsg)
			s.noActiveCall(t, u.alice, cid)

			for _, path := range []string{acceptPath(cid, id), declinePath(cid, id)} {
				r := s.do("PUT", path, u.bob.token, nil)
				assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s: %s", path, r.raw)
				assert.JSONEq(t, notRingingBody, string(r.raw))
			}
			s.endCall(t, u.alice, cid, id)
			watch.expectNone(t, onIdent(convIdent(cid), ofType("new_message")), wsQuiet)
			assert.Len(t, s.callLogs(t, u.alice, cid, id), 1, "still one log")
			s.startCall(t, u.alice, cid, "audio") // allowed again
		})

		t.Run("group", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice := s.callClient(t, u.alice, true)
			watch := s.convWatcher(t, u.alice, g)
			s.callClient(t, u.bob, true)

			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			assert.Equal(t, "ringing", s.activeCall(t, u.carol, g)["status"], "bob is online")

			s.declineCall(t, u.bob, g, id)
			// One decline of two is bob's answer only: the call goes on.
			checkParticipantDeclined(t, alice, callIdent, id, u.bob)
			checkParticipantDeclined(t, watch, convIdent(g), id, u.bob)
			noCall(t, alice, "call_declined", id)
			watch.expectNone(t, onIdent(convIdent(g), ofType("call_declined")), 0)
			act := s.activeCall(t, u.alice, g)
			assert.Equal(t, id, num(t, act["id"]), "carol has not answered yet")
			assert.Equal(t, "ringing", act["status"])
			watch.expectNone(t, onIdent(convIdent(g), isCallLog(id)), wsQuiet)

			r := s.do("PUT", declinePath(g, id), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.Equal(t, "declined", r.json(t)["status"], "the last callee declined")
			checkDeclined(t, alice, callIdent, id, u.carol)
			logMsg := expectLog(t, watch, g, id)
			assertCallLog(t, logMsg, id, u.alice.id, "video", "declined", false)
			assert.Len(t, s.callLogs(t, u.bob, g, id), 1)
			s.noActiveCall(t, u.alice, g)
		})
	})
}

// Nobody answers within the ring timeout: the call is missed, once.
func TestCallMissed(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		cfg := m.config(t)
		cfg.CallRingTimeout = shortRing
		s := start(t, cfg)

		t.Run("group call nobody answers", func(t *testing.T) {
			t.Parallel() // each waits out a ring timeout; they share only the server
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob, carol := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, false)
			watch := s.convWatcher(t, u.alice, g)

			began := time.Now()
			id := num(t, s.startCall(t, u.alice, g, "audio")["id"])
			checkIncoming(t, bob, id, g, u.alice, "audio")
			checkIncoming(t, carol, id, g, u.alice, "audio")
			assert.Equal(t, "ringing", s.activeCall(t, u.alice, g)["status"])

			for name, c := range map[string]*wsClient{"alice": alice, "bob": bob, "carol": carol} {
				exactly(t, endedEvent(id), expectCall(t, c, "call_ended", id))
				assert.GreaterOrEqual(t, time.Since(began), shortRing-100*time.Millisecond, "%s: not missed before the timeout", name)
			}
			assert.Less(t, time.Since(began), shortRing+3*time.Second, "missed soon after the timeout")
			logMsg := expectLog(t, watch, g, id)
			assertCallLog(t, logMsg, id, u.alice.id, "audio", "missed", false)
			assert.Len(t, s.callLogs(t, u.carol, g, id), 1)
			s.noActiveCall(t, u.alice, g)

			r := s.do("PUT", acceptPath(g, id), u.bob.token, nil)
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.JSONEq(t, notRingingBody, string(r.raw))
			s.endCall(t, u.alice, g, id)
			for _, c := range []*wsClient{alice, bob, carol} {
				noCall(t, c, "call_ended", id)
			}
			assert.Len(t, s.callLogs(t, u.carol, g, id), 1, "still one log")
		})

		t.Run("an answered call is not missed", func(t *testing.T) {
			t.Parallel() // each waits out a ring timeout; they share only the server
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, cid, "video")["id"])
			s.acceptCall(t, u.bob, cid, id)
			time.Sleep(shortRing + 1100*time.Millisecond) // past the deadline and a sweep
			assert.Equal(t, "active", s.activeCall(t, u.alice, cid)["status"])
			noCall(t, alice, "call_ended", id)
			noCall(t, bob, "call_ended", id)
			assert.Empty(t, s.callLogs(t, u.alice, cid, id))
			s.endCall(t, u.bob, cid, id)
			assertCallLog(t, s.oneCallLog(t, u.alice, cid, id), id, u.alice.id, "video", "ended", true)
		})

		t.Run("answers racing the timer", func(t *testing.T) {
			t.Parallel() // each waits out a ring timeout; they share only the server
			u := s.freshUsers()
			callees := []account{u.bob, u.carol, u.dave, u.eve}
			offsets := []time.Duration{-200 * time.Millisecond, -50 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
			var wg sync.WaitGroup
			for i, callee := range callees {
				cid := num(t, s.createDirect(t, u.alice, callee)["id"])
				id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
				created := time.Now()
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Until(created.Add(shortRing + offsets[i])))
					r := s.do("PUT", acceptPath(cid, id), callee.token, nil)
					switch r.status {
					case http.StatusOK:
						// Answered in time: active until hung up.
						time.Sleep(shortRing)
						assert.Equal(t, "active", s.activeCall(t, u.alice, cid)["status"])
						assert.Empty(t, s.callLogs(t, u.alice, cid, id), "an answered call is not missed")
						s.endCall(t, u.alice, cid, id)
						assertCallLog(t, s.oneCallLog(t, u.alice, cid, id), id, u.alice.id, "audio", "ended", true)
					case http.StatusUnprocessableEntity:
						assert.JSONEq(t, notRingingBody, string(r.raw))
						assertCallLog(t, s.oneCallLog(t, u.alice, cid, id), id, u.alice.id, "audio", "missed", false)
						s.noActiveCall(t, u.alice, cid)
					default:
						t.Errorf("accept at the timeout: %d %s", r.status, r.raw)
					}
				}()
			}
			wg.Wait()
		})
	})
}

// The missed-call timer lives in the database: a call survives a restart of
// the server and is still missed on time, once.
func TestCallMissedAfterRestart(t *testing.T) {
	i := slices.IndexFunc(modes, func(m mode) bool { return m.name == "real" })
	require.GreaterOrEqual(t, i, 0)
	cfg := modes[i].config(t)
	const ring = 3 * time.Second
	cfg.CallRingTimeout = ring
	s1 := start(t, cfg)
	u := s1.freshUsers()
	cid := num(t, s1.createDirect(t, u.alice, u.bob)["id"])
	began := time.Now()
	id := num(t, s1.startCall(t, u.alice, cid, "video")["id"])
	s1.stop()

	s2 := start(t, cfg)
	alice, bob := s2.callClient(t, u.alice, false), s2.callClient(t, u.bob, false)
	watch := s2.convWatcher(t, u.alice, cid)
	if time.Since(began) < ring-500*time.Millisecond {
		assert.Equal(t, id, num(t, s2.activeCall(t, u.bob, cid)["id"]), "the call still rings after the restart")
	}
	exactly(t, endedEvent(id), expectCall(t, alice, "call_ended", id))
	exactly(t, endedEvent(id), expectCall(t, bob, "call_ended", id))
	elapsed := time.Since(began)
	assert.GreaterOrEqual(t, elapsed, ring-100*time.Millisecond, "not missed early")
	assert.Less(t, elapsed, ring+3*time.Second, "missed on time")
	logMsg := expectLog(t, watch, cid, id)
	assertCallLog(t, logMsg, id, u.alice.id, "video", "missed", false)
	assert.Len(t, s2.callLogs(t, u.bob, cid, id), 1)
	s2.noActiveCall(t, u.alice, cid)
}

// Group calls: late joins, leaves, and the initiator hanging up for all.
func TestCallGroup(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		t.Run("late join and leaves", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			alice, bob, carol := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, true)
			watch := s.convWatcher(t, u.alice, g)

			id := num(t, s.startCall(t, u.alice, g, "video")["id"])
			checkIncoming(t, bob, id, g, u.alice, "video")
			checkIncoming(t, carol, id, g, u.alice, "video")

			s.acceptCall(t, u.bob, g, id)
			checkAccepted(t, alice, id, u.bob)
			expectAnsweredByOther(t, carol, id)
			act := s.activeCall(t, u.carol, g)
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, act))
			startedAt := act["started_at"]
			assertTimestamp(t, startedAt, "started_at")

			// carol joins late.
			time.Sleep(20 * time.Millisecond)
			s.acceptCall(t, u.carol, g, id)
			checkJoined(t, alice, id, u.carol)
			checkJoined(t, bob, id, u.carol)
			noCall(t, alice, "call_accepted", id)
			noCall(t, carol, "participant_joined", id)
			act = s.activeCall(t, u.alice, g)
			assert.Equal(t, "active", act["status"])
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id, u.carol.id}, participantIDs(t, act))
			assert.Equal(t, startedAt, act["started_at"], "started_at is stamped once")

			// Every participant may signal every other.
			sendSignal(carol, id, u.bob.id, offerSignal)
			expectSignal(t, bob, id, u.carol.id, offerSignal)
			sendSignal(bob, id, u.carol.id, answerSignal)
			expectSignal(t, carol, id, u.bob.id, answerSignal)
			carol.perform(callIdent, map[string]any{"action": "toggle_mute", "call_session_id": id, "muted": true})
			exactly(t, mutedEvent(id, u.carol.id, true), expectCall(t, alice, "participant_muted", id))
			exactly(t, mutedEvent(id, u.carol.id, true), expectCall(t, bob, "participant_muted", id))
			noCall(t, carol, "participant_muted", id)

			// carol leaves: the call goes on with alice and bob.
			s.endCall(t, u.carol, g, id)
			exactly(t, leftEvent(id, u.carol.id), expectCall(t, alice, "participant_left", id))
			exactly(t, leftEvent(id, u.carol.id), expectCall(t, bob, "participant_left", id))
			noCall(t, carol, "participant_left", id)
			for _, c := range []*wsClient{alice, bob, carol} {
				noCall(t, c, "call_ended", id)
			}
			act = s.activeCall(t, u.bob, g)
			assert.Equal(t, "active", act["status"])
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, participantIDs(t, act))
			watch.expectNone(t, onIdent(convIdent(g), isCallLog(id)), wsQuiet)

			// A participant who left no longer gets the others' signals or toggles.
			sendSignal(bob, id, u.carol.id, iceSignal)
			noSignal(t, carol, id)
			alice.perform(callIdent, map[string]any{"action": "toggle_camera", "call_session_id": id, "camera_off": true})
			exactly(t, cameraEvent(id, u.alice.id, true), expectCall(t, bob, "participant_camera_toggled", id))
			noCall(t, carol, "participant_camera_toggled", id)

			// bob leaves: fewer than two remain, so the call ends.
			s.endCall(t, u.bob, g, id)
			exactly(t, endedEvent(id), expectCall(t, alice, "call_ended", id))
			exactly(t, endedEvent(id), expectCall(t, carol, "call_ended", id))
			noCall(t, bob, "call_ended", id)
			logMsg := expectLog(t, watch, g, id)
			cs := assertCallLog(t, logMsg, id, u.alice.id, "video", "ended", true)
			assert.Equal(t, startedAt, cs["started_at"])
			assert.Len(t, s.callLogs(t, u.carol, g, id), 1)
			s.noActiveCall(t, u.alice, g)
		})

		t.Run("the initiator ends it for everyone", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol, u.dave)["id"])
			alice, bob, carol, dave := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true), s.callClient(t, u.carol, false), s.callClient(t, u.dave, true)
			watch := s.convWatcher(t, u.dave, g)

			id := num(t, s.startCall(t, u.alice, g, "audio")["id"])
			s.acceptCall(t, u.bob, g, id)
			expectAnsweredByOther(t, carol, id)
			expectAnsweredByOther(t, dave, id)
			s.acceptCall(t, u.dave, g, id)
			checkAccepted(t, alice, id, u.bob)
			checkJoined(t, bob, id, u.dave)

			s.endCall(t, u.alice, g, id)
			for _, c := range []*wsClient{bob, carol, dave} { // carol was still ringing
				exactly(t, endedEvent(id), expectCall(t, c, "call_ended", id))
			}
			noCall(t, alice, "call_ended", id)
			assertCallLog(t, expectLog(t, watch, g, id), id, u.alice.id, "audio", "ended", true)
			assert.Len(t, s.callLogs(t, u.alice, g, id), 1)
			s.noActiveCall(t, u.carol, g)
			r := s.do("PUT", acceptPath(g, id), u.carol.token, nil)
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.JSONEq(t, notRingingBody, string(r.raw))
		})
	})
}

// Initiation: body forms, one ongoing call per conversation.
func TestCallInitiation(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		t.Run("top-level body", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			r := s.do("POST", callsPath(cid), u.alice.token, map[string]any{"call_type": "video"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			assertCallSession(t, dataOf(t, r), cid, u.alice.id, "video")
		})

		t.Run("one ongoing call per conversation", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			other := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			// alice and carol are connected, so the call is really attended.
			s.callClient(t, u.alice, true)
			s.callClient(t, u.carol, true)
			id := num(t, s.startCall(t, u.alice, g, "audio")["id"])
			conflict := func(who account, why string) {
				t.Helper()
				r := s.do("POST", callsPath(g), who.token, callBody("video"))
				assert.Equal(t, http.StatusConflict, r.status, "%s: %s", why, r.raw)
				assert.JSONEq(t, callInProgressBody, string(r.raw))
			}
			conflict(u.alice, "ringing, the initiator again")
			conflict(u.bob, "ringing, another member")
			// Another conversation is free.
			s.startCall(t, u.bob, other, "audio")

			s.acceptCall(t, u.carol, g, id)
			conflict(u.bob, "active")
			assert.Equal(t, id, num(t, s.activeCall(t, u.bob, g)["id"]), "the first call is untouched")

			s.endCall(t, u.alice, g, id)
			next := s.startCall(t, u.bob, g, "video")
			assert.NotEqual(t, id, num(t, next["id"]), "allowed again after it ended")
		})

		t.Run("racing initiations", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			who := []account{u.alice, u.bob, u.carol}
			const n = 12
			rs := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rs[i] = s.do("POST", callsPath(g), who[i%len(who)].token, callBody("audio"))
				}()
			}
			wg.Wait()
			var won []int64
			for _, r := range rs {
				switch r.status {
				case http.StatusCreated:
					won = append(won, num(t, dataOf(t, r)["id"]))
				case http.StatusConflict:
					assert.JSONEq(t, callInProgressBody, string(r.raw))
				default:
					t.Errorf("racing initiation: %d %s", r.status, r.raw)
				}
			}
			require.Len(t, won, 1, "exactly one call starts")
			assert.Equal(t, won[0], num(t, s.activeCall(t, u.alice, g)["id"]))
		})
	})
}

// GET /api/v1/ice_servers: STUN by default, TURN with REST-API credentials when configured.
func TestICEServers(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		defaults, err := main.LoadConfig(env())
		require.NoError(t, err)

		t.Run("default", func(t *testing.T) {
			cfg := m.config(t)
			cfg.STUNURLs, cfg.TURNTTL = defaults.STUNURLs, defaults.TURNTTL
			s := start(t, cfg)
			a := s.register("ice_default")
			r := s.do("GET", "/api/v1/ice_servers", a.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"ice_servers":[{"urls":["stun:stun.l.google.com:19302"]}],"ttl":3600}`, string(r.raw))

			r = s.do("GET", "/api/v1/ice_servers", "", nil)
			assert.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
		})

		t.Run("zero config", func(t *testing.T) {
			s := start(t, m.config(t))
			a := s.register("ice_zero")
			r := s.do("GET", "/api/v1/ice_servers", a.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			body := r.json(t)
			assert.ElementsMatch(t, []string{"ice_servers", "ttl"}, keys(body), "%s", r.raw)
			assert.IsType(t, []any{}, body["ice_servers"], "an array, never null: %s", r.raw)
			assert.Equal(t, float64(3600), body["ttl"])
		})

		t.Run("turn", func(t *testing.T) {
			cfg := m.config(t)
			secret := []byte("turn-shared-secret-for-tests")
			cfg.STUNURLs = []string{"stun:stun.example.com:3478"}
			cfg.TURNURLs = []string{"turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"}
			cfg.TURNSecret = secret
			cfg.TURNTTL = 10 * time.Minute
			s := start(t, cfg)
			a := s.register("ice_turn")
			before := time.Now()
			r := s.do("GET", "/api/v1/ice_servers", a.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			body := r.json(t)
			assert.ElementsMatch(t, []string{"ice_servers", "ttl"}, keys(body), "%s", r.raw)
			assert.Equal(t, float64(600), body["ttl"])
			servers := objs(t, body["ice_servers"])
			require.Len(t, servers, 2, "%s", r.raw)
			assert.JSONEq(t, `{"urls":["stun:stun.example.com:3478"]}`, toJSON(t, servers[0]))
			turn := servers[1]
			assert.ElementsMatch(t, []string{"urls", "username", "credential"}, keys(turn), "%v", turn)
			assert.Equal(t, []any{cfg.TURNURLs[0], cfg.TURNURLs[1]}, turn["urls"])

			username, _ := turn["username"].(string)
			expiry, uid, ok := strings.Cut(username, ":")
			require.True(t, ok, "username is <expiry>:<user id>: %q", username)
			assert.Equal(t, itoa(a.id), uid)
			exp, err := strconv.ParseInt(expiry, 10, 64)
			require.NoError(t, err, "expiry is unix seconds: %q", username)
			assert.InDelta(t, before.Add(cfg.TURNTTL).Unix(), exp, 5, "the credential expires after TURNTTL")

			mac := hmac.New(sha1.New, secret)
			mac.Write([]byte(username))
			assert.Equal(t, base64.StdEncoding.EncodeToString(mac.Sum(nil)), turn["credential"], "credential = base64(HMAC-SHA1(secret, username))")

			b := s.register("ice_turn_b")
			r = s.do("GET", "/api/v1/ice_servers", b.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			other := objs(t, r.json(t)["ice_servers"])[1]
			assert.True(t, strings.HasSuffix(other["username"].(string), ":"+itoa(b.id)), "per-user credentials: %v", other)
		})
	})
}
