package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/users"
)

// FuzzHandle feeds arbitrary client frames to one authenticated
// connection: no frame may panic or stop the connection from answering.
// It is an internal test because handle, the connection and the hub are
// unexported.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"command":"subscribe","identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":1}"}`,
		`{"command":"subscribe","identifier":"{\"channel\":\"PresenceChannel\"}"}`,
		`{"command":"subscribe","identifier":"{\"channel\":\"CallChannel\"}"}`,
		`{"command":"message","identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":1}","data":"{\"action\":\"typing\"}"}`,
		`{"command":"message","identifier":"{\"channel\":\"CallChannel\"}","data":"{\"action\":\"send_signal\",\"call_session_id\":1,\"target_user_id\":2,\"signal\":{}}"}`,
		`{"command":"message","identifier":"{\"channel\":\"PresenceChannel\"}","data":"{\"action\":\"ping\"}"}`,
		`{"command":"unsubscribe","identifier":"{\"channel\":\"PresenceChannel\"}"}`,
		`{"command":"subscribe","identifier":{"channel":"UserChannel"}}`,
		`{"command":"message","identifier":"x","data":{"action":1}}`,
		`[]`, `null`, `"`, `{"command":null}`, `{"identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":\"1e400\"}","command":"subscribe"}`,
	} {
		f.Add([]byte(seed))
	}
	srv, c := fuzzServer(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		srv.handle(c, frame)
	})
}

// fuzzServer wires a gateway over the in-memory adapters with one member
// of conversation 1 connected through an in-memory socket.
func fuzzServer(f *testing.F) (*Server, *conn) {
	ctx := context.Background()
	accounts, chats, tracker := memory.NewUserStore(), memory.NewChatStore(), memory.NewPresence()
	broker := memory.NewBroker(func(string, []byte, chat.Eviction, chat.Position) {})
	f.Cleanup(broker.Close)
	chatSvc := chat.NewService(chat.Deps{Store: chats, Calls: memory.NewCallStore(chats), Users: accounts, Presence: tracker, Publisher: broker})
	pres := presence.NewService(tracker, chats, accounts, broker, nil, nil)
	srv := New(Config{}, Deps{Chat: chatSvc, Presence: pres, Broker: broker, Log: slog.New(slog.DiscardHandler)})
	sk := &discardSink{done: make(chan struct{}, 1)}
	c, err := benchConn(ctx, srv, sk, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.ws.Close(); <-c.done })
	// The connected user exists and is a member of conversation 1, so that
	// member-only and presence paths are reachable too.
	now := time.Now().UTC()
	if _, err := accounts.Create(ctx, users.NewUser{Email: "fuzz@example.com", Username: "fuzz", CreatedAt: now}); err != nil {
		f.Fatal(err)
	}
	name := "fuzz"
	if _, err := chats.CreateConversation(ctx, chat.Conversation{Type: chat.Group, Name: &name, CreatedByID: 1, CreatedAt: now, UpdatedAt: now},
		[]chat.Membership{{UserID: 1, Role: chat.RoleAdmin, CreatedAt: now}}); err != nil {
		f.Fatal(err)
	}
	return srv, c
}

// FuzzIdentifier subscribes one connection with arbitrary identifiers, as
// a client's subscribe command carries them. Action Cable clients route
// every reply by comparing its identifier with the one they sent, so the
// server must answer each subscribe exactly once, confirm or reject, with
// the identifier it received echoed unchanged (it is opaque to the client:
// key order, spacing and escapes included); and an identifier that names no
// channel we serve must be rejected. FuzzHandle only checks that no frame
// panics; this checks what the client sees.
func FuzzIdentifier(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"ConversationChannel","conversation_id":1}`,
		`{"channel":"ConversationChannel","conversation_id":"1"}`,
		`{"conversation_id":1,"channel":"ConversationChannel"}`,
		`{ "channel" : "ConversationChannel" , "conversation_id" : 1 }`,
		`{"channel":"ConversationChannel","conversation_id":2}`,
		`{"channel":"ConversationChannel","conversation_id":"1e400"}`,
		`{"channel":"ConversationChannel"}`,
		`{"channel":"PresenceChannel"}`,
		`{"channel":"CallChannel","extra":[1,{"a":null}]}`,
		`{"channel":"UserChannel"}`,
		`{"channel":"Presence\u0043hannel"}`,
		`{"channel":"NoSuchChannel"}`,
		`{"channel":"AdminChannel","conversation_id":1}`,
		`{"channel":["PresenceChannel"]}`,
		`{"channel":"PresenceChannel","channel":"NoSuchChannel"}`,
		`{"channel":"ConversationChannel","conversation_id":1,"note":"<script>\u2028é😀</script>"}`,
		`["PresenceChannel"]`, `PresenceChannel`, ``, `null`, `{}`, "\xff\xfe",
	} {
		f.Add(seed)
	}
	srv, c, rec := fuzzCable(f)
	f.Fuzz(func(t *testing.T, identifier string) {
		rec.reset()
		frame, err := json.Marshal(map[string]string{"command": "subscribe", "identifier": identifier})
		if err != nil {
			t.Fatal(err) // a Go string always marshals
		}
		// What the server decodes: invalid UTF-8 becomes U+FFFD on the way.
		var sent string
		if err := json.Unmarshal(frame[bytes.Index(frame, []byte(`"identifier":`))+len(`"identifier":`):len(frame)-1], &sent); err != nil {
			t.Fatal(err)
		}
		srv.handle(c, frame)
		c.mu.Lock()
		_, confirmed := c.subs[sent]
		c.mu.Unlock()
		if confirmed {
			// Keep the connection under its subscription cap across inputs.
			unsub, _ := json.Marshal(map[string]string{"command": "unsubscribe", "identifier": sent})
			srv.handle(c, unsub)
		}
		replies := rec.frames(t, c)
		if len(replies) == 0 {
			t.Fatalf("subscribe %q: no reply", sent)
		}
		var first struct {
			Type       string  `json:"type"`
			Identifier *string `json:"identifier"`
		}
		for i, r := range replies {
			var msg struct {
				Type       string          `json:"type"`
				Identifier *string         `json:"identifier"`
				Message    json.RawMessage `json:"message"`
			}
			if err := json.Unmarshal(r, &msg); err != nil {
				t.Fatalf("reply %d is not JSON: %q", i, r)
			}
			if msg.Identifier == nil || *msg.Identifier != sent {
				t.Fatalf("reply %d %q does not echo the identifier %q", i, r, sent)
			}
			if i == 0 {
				first.Type, first.Identifier = msg.Type, msg.Identifier
			} else if msg.Type != "" || msg.Message == nil {
				t.Fatalf("reply %d after the %s is not a message: %q", i, first.Type, r)
			}
		}
		switch first.Type {
		case "confirm_subscription":
			if !confirmed {
				t.Fatalf("confirmed %q but holds no subscription for it", sent)
			}
		case "reject_subscription":
			if confirmed {
				t.Fatalf("rejected %q but holds a subscription for it", sent)
			}
		default:
			t.Fatalf("first reply to subscribe %q is %q", sent, replies[0])
		}
		if want := expectedSubscribe(sent); want != "" && want != first.Type {
			t.Fatalf("subscribe %q: got %s, want %s", sent, first.Type, want)
		}
	})
}

// expectedSubscribe is the answer the identifier must get from a member of
// conversation 1 only, or "" where either is defensible (exotic but
// parseable conversation ids).
func expectedSubscribe(identifier string) string {
	var params map[string]json.RawMessage
	if json.Unmarshal([]byte(identifier), &params) != nil {
		return "reject_subscription"
	}
	var name string
	if json.Unmarshal(params["channel"], &name) != nil {
		return "reject_subscription"
	}
	switch name {
	case "PresenceChannel", "CallChannel", "UserChannel":
		return "confirm_subscription"
	case "ConversationChannel":
		raw, ok := params["conversation_id"]
		if !ok {
			return "reject_subscription"
		}
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "reject_subscription" // null, arrays, objects, booleans
			}
			n = json.Number(s)
		}
		switch string(n) {
		case "1":
			return "confirm_subscription"
		case "2", "0", "-1":
			return "reject_subscription" // not a member, or not an id
		}
		return ""
	default:
		return "reject_subscription"
	}
}

// fuzzCable is fuzzServer's gateway with a connection that holds no
// subscription yet and whose socket records what the server writes.
func fuzzCable(f *testing.F) (*Server, *conn, *recordingConn) {
	srv, _ := fuzzServer(f)
	nc := &recordingConn{closed: make(chan struct{})}
	req, err := nethttp.NewRequest(nethttp.MethodGet, "http://chatterly.test/cable?token=x", nil)
	if err != nil {
		f.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "actioncable-v1-json")
	ws, err := srv.upgrader.Upgrade(&recordingHijacker{nc: nc}, req, nil)
	if err != nil {
		f.Fatal(err)
	}
	nc.reset() // drop the handshake response
	c := &conn{
		srv: srv, ws: ws, id: newID(),
		user:   users.User{ID: 1, Username: "fuzz"},
		claims: auth.Claims{UserID: 1, ID: newID(), ExpiresAt: time.Now().Add(time.Hour)},
		subs:   map[string]*subscription{}, done: make(chan struct{}),
	}
	srv.hub.addConn(c)
	go srv.read(c)
	f.Cleanup(func() { _ = nc.Close(); <-c.done })
	return srv, c, nc
}

// recordingConn is an in-memory net.Conn that keeps what the server writes;
// reads block until Close, like an idle client's socket.
type recordingConn struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	closed    chan struct{}
	closeOnce sync.Once
}

func (r *recordingConn) Read([]byte) (int, error) {
	<-r.closed
	return 0, net.ErrClosed
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recordingConn) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

func (r *recordingConn) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Reset()
}

func (r *recordingConn) LocalAddr() net.Addr              { return memAddr }
func (r *recordingConn) RemoteAddr() net.Addr             { return memAddr }
func (r *recordingConn) SetDeadline(time.Time) error      { return nil }
func (r *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }

// frames waits until c has written everything it queued and decodes the
// WebSocket messages written since the last reset: server frames are
// unmasked, and a long message may be split into continuation frames.
func (r *recordingConn) frames(t *testing.T, c *conn) [][]byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		busy, closing := c.writing || len(c.queue) > 0, c.closing
		c.mu.Unlock()
		if closing {
			t.Fatal("the server is closing the connection")
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not finish writing within 5 s")
		}
		time.Sleep(50 * time.Microsecond)
	}
	r.mu.Lock()
	b := bytes.Clone(r.buf.Bytes())
	r.mu.Unlock()
	var msgs [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated frame header % x", b)
		}
		fin, opcode, n, hdr := b[0]&0x80 != 0, b[0]&0x0f, uint64(b[1]&0x7f), 2
		if b[1]&0x80 != 0 {
			t.Fatal("the server masked a frame")
		}
		switch {
		case n == 126 && len(b) >= 4:
			n, hdr = uint64(binary.BigEndian.Uint16(b[2:4])), 4
		case n == 127 && len(b) >= 10:
			n, hdr = binary.BigEndian.Uint64(b[2:10]), 10
		case n >= 126:
			t.Fatalf("truncated frame header % x", b)
		}
		if uint64(len(b)-hdr) < n {
			t.Fatalf("truncated frame: %d of %d payload bytes", len(b)-hdr, n)
		}
		if opcode != websocket.TextMessage && opcode != 0 {
			t.Fatalf("unexpected frame opcode %d", opcode)
		}
		cur = append(cur, b[hdr:hdr+int(n)]...)
		b = b[hdr+int(n):]
		if fin {
			msgs, cur = append(msgs, cur), nil
		}
	}
	if cur != nil {
		t.Fatal("a message was left unfinished")
	}
	return msgs
}

// recordingHijacker hands the recording conn to Upgrader.Upgrade.
type recordingHijacker struct {
	nethttp.ResponseWriter // nil: Upgrade only calls these on a failed handshake
	nc                     *recordingConn
}

func (h *recordingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.nc, bufio.NewReadWriter(bufio.NewReader(h.nc), bufio.NewWriter(h.nc)), nil
}
