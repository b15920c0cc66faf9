package chat_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/chat"
)

// The gateway ends subscriptions from the Eviction an event is published
// with, never from its payload: each event that ends some says whose.
func TestEventsSayWhomTheyEvict(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(f *fixture, alice, bob, conv int64) error
		// event is the type of the one event that evicts, on the
		// conversation's stream; every other event evicts nobody.
		event string
		want  func(alice, bob int64) chat.Eviction
	}{
		{
			name:   "a member removed",
			change: func(f *fixture, alice, bob, conv int64) error { return f.svc.RemoveMember(ctx, alice, conv, bob) },
			event:  "member_left",
			want:   func(_, bob int64) chat.Eviction { return chat.Eviction{UserID: bob} },
		},
		{
			name:   "a member leaving",
			change: func(f *fixture, _, bob, conv int64) error { return f.svc.RemoveMember(ctx, bob, conv, bob) },
			event:  "member_left",
			want:   func(_, bob int64) chat.Eviction { return chat.Eviction{UserID: bob} },
		},
		{
			name:   "the conversation deleted",
			change: func(f *fixture, alice, _, conv int64) error { return f.svc.DeleteConversation(ctx, alice, conv) },
			event:  "conversation_deleted",
			want:   func(int64, int64) chat.Eviction { return chat.Eviction{Everyone: true} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			alice, bob := f.user(t, "alice"), f.user(t, "bob")
			conv := f.group(t, alice, bob)
			f.events.take()
			require.NoError(t, tt.change(f, alice, bob, conv))
			evicting := 0
			for _, ev := range f.events.take() {
				if ev.stream == chat.ConversationStream(conv) && typeOf(t, ev.payload) == tt.event {
					evicting++
					assert.Equal(t, tt.want(alice, bob), ev.evict, "%s", ev.payload)
					continue
				}
				assert.True(t, ev.evict.IsZero(), "%s on %s evicts %+v", ev.payload, ev.stream, ev.evict)
			}
			assert.Equal(t, 1, evicting, "%s events on the conversation's stream", tt.event)
		})
	}
}

func typeOf(t *testing.T, payload string) string {
	t.Helper()
	var ev struct{ Type string }
	require.NoError(t, json.Unmarshal([]byte(payload), &ev))
	return ev.Type
}
