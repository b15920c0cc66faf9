package ws

import (
	"encoding/json"
	"strconv"
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
}
