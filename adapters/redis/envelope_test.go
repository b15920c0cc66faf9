package redis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/chat"
)

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		ev      chat.Eviction
		wire    string // "" when the wire form is not asserted
	}{
		{"an event that evicts nobody travels as before typed evictions", `{"type":"new_message"}`, chat.Eviction{}, `{"type":"new_message"}`},
		{"a payload that is not a JSON object is tagged", "3", chat.Eviction{}, "n3"},
		{"an empty payload", "", chat.Eviction{}, "n"},
		{"everyone", `{"type":"conversation_deleted"}`, chat.Eviction{Everyone: true}, `a{"type":"conversation_deleted"}`},
		{"one user", `{"type":"member_left","user_id":7}`, chat.Eviction{UserID: 7}, ""},
		{"a large id", "x", chat.Eviction{UserID: 1<<62 + 5}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := seal([]byte(tt.payload), tt.ev)
			if tt.wire != "" {
				assert.Equal(t, tt.wire, wire)
			}
			payload, ev, ok := unseal(wire)
			require.True(t, ok)
			assert.Equal(t, tt.payload, string(payload))
			assert.Equal(t, tt.ev, ev)
		})
	}
	for _, bad := range []string{"", "u123", "zzz"} {
		_, _, ok := unseal(bad)
		assert.False(t, ok, "%q", bad)
	}
}
