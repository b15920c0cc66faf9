package ws

import (
	"encoding/json"
	"strconv"

	"github.com/chatterly/chatterly/core/chat"
)

// Frames the server sends. Fixed ones are encoded once for the process.
var (
	frameWelcome       = []byte(`{"type":"welcome"}`)
	frameUnauthorized  = []byte(`{"type":"disconnect","reason":"unauthorized","reconnect":false}`)
	frameServerRestart = []byte(`{"type":"disconnect","reason":"server_restart","reconnect":true}`)
	frameTooSlow       = []byte(`{"type":"disconnect","reason":"too_slow","reconnect":true}`)
	// reconnect:true because reconnect:false stops the stock client for
	// good; it retries with its backoff, by when a tab may have closed.
	frameTooManyConnections = []byte(`{"type":"disconnect","reason":"too_many_connections","reconnect":true}`)
	// server_busy: more connects than Config.ConnectRate allows; the client
	// comes back after its backoff, by when the storm has thinned.
	frameServerBusy = []byte(`{"type":"disconnect","reason":"server_busy","reconnect":true}`)
)

func framePing(unix int64) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"type":"ping","message":`...)
	b = strconv.AppendInt(b, unix, 10)
	return append(b, '}')
}

// identifierJSON is the identifier as a JSON string, encoded once per
// subscription; the raw identifier is echoed byte for byte inside it.
func identifierJSON(raw string) []byte {
	b, _ := json.Marshal(raw) // a Go string always marshals
	return b
}

func frameConfirm(ident []byte) []byte {
	return concat(`{"identifier":`, ident, `,"type":"confirm_subscription"}`)
}

func frameReject(ident []byte) []byte {
	return concat(`{"identifier":`, ident, `,"type":"reject_subscription"}`)
}

// frameMessage wraps an already rendered payload for one identifier.
func frameMessage(ident, payload []byte) []byte {
	b := make([]byte, 0, len(ident)+len(payload)+26)
	b = append(b, `{"identifier":`...)
	b = append(b, ident...)
	b = append(b, `,"message":`...)
	b = append(b, payload...)
	return append(b, '}')
}

func concat(head string, mid []byte, tail string) []byte {
	b := make([]byte, 0, len(head)+len(mid)+len(tail))
	b = append(b, head...)
	b = append(b, mid...)
	return append(b, tail...)
}

// command is a client frame.
type command struct {
	Command    string          `json:"command"`
	Identifier json.RawMessage `json:"identifier"`
	Data       json.RawMessage `json:"data"`
	// History asks, with subscribe or alone (command "history"), for the
	// events the client missed (extended protocol). Decoded apart, so that
	// a malformed one is answered with reject_history rather than making
	// the whole command unreadable (see historyOf).
	History json.RawMessage `json:"history"`
}

// historyOf decodes a command's history request: nil when there is none,
// and ok false when it is malformed.
func historyOf(raw json.RawMessage) (req *historyRequest, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	req = &historyRequest{}
	if json.Unmarshal(raw, req) != nil {
		return nil, false
	}
	return req, true
}

// historyRequest names what a client of the extended protocol has seen:
// per stream, the place of the last event it got; for the other streams,
// the time (Unix seconds) from which it wants everything.
type historyRequest struct {
	Since   int64                     `json:"since"`
	Streams map[string]streamPosition `json:"streams"`
}

type streamPosition struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// frameMessageAt is frameMessage for a client of the extended protocol:
// the event's stream and place in it ride along, from which the client
// asks for what it missed after a reconnect. Stream names and epochs are
// the server's own ([a-z0-9_.]), so they need no escaping.
func frameMessageAt(ident, payload []byte, stream string, pos chat.Position) []byte {
	b := make([]byte, 0, len(ident)+len(payload)+len(stream)+len(pos.Epoch)+70)
	b = append(b, `{"identifier":`...)
	b = append(b, ident...)
	b = append(b, `,"message":`...)
	b = append(b, payload...)
	b = append(b, `,"stream_id":"`...)
	b = append(b, stream...)
	b = append(b, `","epoch":"`...)
	b = append(b, pos.Epoch...)
	b = append(b, `","offset":`...)
	b = strconv.AppendUint(b, pos.Offset, 10)
	return append(b, '}')
}

func frameConfirmHistory(ident []byte) []byte {
	return concat(`{"identifier":`, ident, `,"type":"confirm_history"}`)
}

func frameRejectHistory(ident []byte) []byte {
	return concat(`{"identifier":`, ident, `,"type":"reject_history"}`)
}

// welcomeExt is the extended protocol's welcome: the session id to come
// back with, and which subscriptions a resumed session brought back.
type welcomeExt struct {
	Type        string   `json:"type"`
	SID         string   `json:"sid,omitempty"`
	Restored    bool     `json:"restored,omitempty"`
	RestoredIDs []string `json:"restored_ids,omitempty"`
}

func frameWelcomeExt(sid string, restored []string) []byte {
	b, _ := json.Marshal(welcomeExt{Type: "welcome", SID: sid, Restored: restored != nil, RestoredIDs: restored}) // plain strings always marshal
	return b
}
