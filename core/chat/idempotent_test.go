package chat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// A retry of a send answers the first message as history shows it now, and
// publishes nothing: its event went out with the first send.
func TestSendMessageRetryPublishesNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, a, b)
	other := f.group(t, a, b)
	f.events.take()
	id := "0b6f9e0c-7d4e-4d1c-8b4a-2f6f4a1d9c3e"

	first, created, err := f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "hi", ClientID: &id})
	require.NoError(t, err)
	require.True(t, created)
	require.NotNil(t, first.ClientID)
	assert.Equal(t, id, *first.ClientID)
	require.Len(t, f.events.take(), 1)
	_, err = f.svc.AddReaction(ctx, b, first.ID, "👍")
	require.NoError(t, err)
	f.events.take()

	again, created, err := f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "hi, edited before the retry", ClientID: &id})

	require.NoError(t, err)
	assert.False(t, created)
	assert.Empty(t, f.events.take(), "a retry publishes nothing")
	page, err := f.svc.History(ctx, a, conv, 0, 50, false)
	require.NoError(t, err)
	require.Len(t, page.Messages, 1)
	assert.Equal(t, page.Messages[0], again, "rendered as history renders it, reactions included")
	assert.Equal(t, first.ID, again.ID)

	_, _, err = f.svc.SendMessage(ctx, f.as(t, a), other, chat.MessageInput{Content: "hi", ClientID: &id})
	assert.Equal(t, core.Conflict, core.KindOf(err), "%v", err)
	assert.Empty(t, f.events.take())
}

func TestSendMessageClientIDRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.user(t, "alice")
	conv := f.group(t, a)
	tests := []struct {
		name    string
		id      string
		problem string // empty when the id is valid
	}{
		{"a UUID", "0b6f9e0c-7d4e-4d1c-8b4a-2f6f4a1d9c3e", ""},
		{"every allowed character", "azAZ09-_.:", ""},
		{"one character", "x", ""},
		{"64 characters", strings.Repeat("a", 64), ""},
		{"empty", "", "Client id can't be blank"},
		{"65 characters", strings.Repeat("a", 65), "Client id is too long (maximum is 64 characters)"},
		{"a space", "a b", "Client id may contain only letters, digits, '-', '_', '.' and ':'"},
		{"a slash", "a/b", "Client id may contain only letters, digits, '-', '_', '.' and ':'"},
		{"non-ASCII", "é", "Client id may contain only letters, digits, '-', '_', '.' and ':'"},
		{"a control character", "a\tb", "Client id may contain only letters, digits, '-', '_', '.' and ':'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, created, err := f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "hi", ClientID: &tc.id})

			if tc.problem == "" {
				require.NoError(t, err)
				assert.True(t, created)
				return
			}
			var ce *core.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, core.Invalid, ce.Kind)
			assert.Equal(t, []string{tc.problem}, ce.Details)
		})
	}
}
