// Internal test: the reply table is unexported.
package ws

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/chatterly/chatterly/core"
)

// The frames are the contract (docs/api.md, actioncable.md): byte for byte.
func TestReplyToEachKindAtEachStep(t *testing.T) {
	ident := identifierJSON(`{"channel":"CallChannel"}`)
	limited := &core.Error{Kind: core.RateLimited, Message: "Too many requests, try again in 10 seconds", RetryAfterSeconds: 10}
	tests := []struct {
		name string
		step step
		err  error
		want string // "" for no frame
	}{
		{"a bad token signs out", connecting, core.E(core.Unauthenticated, "revoked"), `{"type":"disconnect","reason":"unauthorized","reconnect":false}`},
		{"a denylist down at connect: come back", connecting, core.E(core.Unavailable, "redis"), `{"type":"disconnect","reason":"server_restart","reconnect":true}`},
		{"an unclassified error at connect: come back", connecting, errors.New("boom"), `{"type":"disconnect","reason":"server_restart","reconnect":true}`},
		{"not a member: rejected", subscribing, core.E(core.Forbidden, "no"), `{"identifier":"{\"channel\":\"CallChannel\"}","type":"reject_subscription"}`},
		{"no such conversation: rejected", subscribing, core.E(core.NotFound, "no"), `{"identifier":"{\"channel\":\"CallChannel\"}","type":"reject_subscription"}`},
		{"a bad identifier: rejected", subscribing, core.E(core.Invalid, "no channel"), `{"identifier":"{\"channel\":\"CallChannel\"}","type":"reject_subscription"}`},
		{"the database down at subscribe: come back", subscribing, core.Wrap(core.Unavailable, "db", errors.New("dial")), `{"type":"disconnect","reason":"server_restart","reconnect":true}`},
		{"an action over its limit is told so", performing, limited, `{"identifier":"{\"channel\":\"CallChannel\"}","message":{"error":"rate_limit","message":"Too many requests, try again in 10 seconds"}}`},
		{"a refused action is not answered", performing, core.E(core.Forbidden, "not a participant"), ""},
		{"a limiter down drops the action quietly", performing, core.E(core.Unavailable, "redis"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := replyTo(tt.step, tt.err).frame(ident, tt.err)
			if tt.want == "" {
				assert.Nil(t, got)
				return
			}
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestEveryKindHasAReply(t *testing.T) {
	for _, k := range []core.Kind{core.Invalid, core.Unauthenticated, core.Forbidden, core.NotFound, core.Conflict, core.RateLimited, core.Unavailable, core.Internal} {
		assert.Contains(t, replyOf, k, "kind %v", k)
	}
}
