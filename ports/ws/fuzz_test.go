package ws

import (
	"context"
	"testing"
	"time"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
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
	users, chats, tracker := memory.NewUserStore(), memory.NewChatStore(), memory.NewPresence()
	broker := memory.NewBroker(func(string, []byte) {})
	f.Cleanup(broker.Close)
	chatSvc := chat.NewService(chat.Deps{Store: chats, Users: users, Presence: tracker, Publisher: broker})
	pres := presence.NewService(tracker, chats, users, broker, nil, nil)
	srv := New(Config{}, Deps{Chat: chatSvc, Presence: pres, Broker: broker})
	sk := &discardSink{done: make(chan struct{}, 1)}
	c, err := benchConn(ctx, srv, sk, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.ws.Close(); <-c.done })
	// The connected user is a member of conversation 1, so that member-only
	// paths are reachable too.
	now := time.Now().UTC()
	name := "fuzz"
	if _, err := chats.CreateConversation(ctx, chat.Conversation{Type: chat.Group, Name: &name, CreatedByID: 1, CreatedAt: now, UpdatedAt: now},
		[]chat.Membership{{UserID: 1, Role: chat.RoleAdmin, CreatedAt: now}}); err != nil {
		f.Fatal(err)
	}
	return srv, c
}
