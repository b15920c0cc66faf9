package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/ratelimit"
)

func TestParseRule(t *testing.T) {
	cases := []struct {
		in      string
		want    ratelimit.Rule
		wantErr bool
	}{
		{"20/10s", ratelimit.Rule{Limit: 20, Window: 10 * time.Second}, false},
		{" 5 / m ", ratelimit.Rule{Limit: 5, Window: time.Minute}, false},
		{"100/1h30m", ratelimit.Rule{Limit: 100, Window: 90 * time.Minute}, false},
		{"3/250ms", ratelimit.Rule{Limit: 3, Window: 250 * time.Millisecond}, false},
		{"off", ratelimit.Rule{}, false},
		{"OFF", ratelimit.Rule{}, false},
		{"0", ratelimit.Rule{}, false},
		{"0/10s", ratelimit.Rule{}, false},
		{"20", ratelimit.Rule{}, true},
		{"", ratelimit.Rule{}, true},
		{"-1/10s", ratelimit.Rule{}, true},
		{"many/10s", ratelimit.Rule{}, true},
		{"20/soon", ratelimit.Rule{}, true},
		{"20/0s", ratelimit.Rule{}, true},
		{"20/-5s", ratelimit.Rule{}, true},
		{"20/10", ratelimit.Rule{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ratelimit.ParseRule(tc.in)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRuleStringRoundTrips(t *testing.T) {
	for _, r := range ratelimit.Defaults() {
		got, err := ratelimit.ParseRule(r.String())
		require.NoError(t, err, r.String())
		assert.Equal(t, r, got)
	}
	assert.Equal(t, "unlimited", ratelimit.Rule{}.String())
}

func TestDefaultsCoverEveryName(t *testing.T) {
	d := ratelimit.Defaults()
	for _, n := range ratelimit.Names {
		assert.False(t, d[n].Unlimited(), "%s has a default limit", n)
	}
	assert.Len(t, d, len(ratelimit.Names))
	assert.Equal(t, ratelimit.Rule{Limit: 20, Window: 10 * time.Second}, d[ratelimit.Messages], "as the original intended")
}

func TestPolicyCheck(t *testing.T) {
	now := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	l := memory.NewRateLimiter()
	l.Now = func() time.Time { return now }
	p := ratelimit.NewPolicy(l, ratelimit.Rules{
		ratelimit.Messages:  {Limit: 2, Window: 10 * time.Second},
		ratelimit.Reactions: {Limit: 1, Window: 400 * time.Millisecond},
		ratelimit.Typing:    {},
	}, nil)
	ctx := t.Context()

	require.NoError(t, p.Check(ctx, ratelimit.Messages, "7"))
	require.NoError(t, p.Check(ctx, ratelimit.Messages, "7"))
	err := p.Check(ctx, ratelimit.Messages, "7")
	require.Error(t, err)
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, core.RateLimited, ce.Kind)
	assert.Equal(t, 10, ce.RetryAfterSeconds)
	assert.Equal(t, "Too many requests, try again in 10 seconds", ce.Message)

	assert.NoError(t, p.Check(ctx, ratelimit.Messages, "8"), "another key")
	assert.NoError(t, p.Check(ctx, ratelimit.Reactions, "7"), "another rule, same key")
	require.ErrorAs(t, p.Check(ctx, ratelimit.Reactions, "7"), &ce)
	assert.Equal(t, 1, ce.RetryAfterSeconds, "never less than one")

	now = now.Add(9*time.Second + 500*time.Millisecond)
	require.ErrorAs(t, p.Check(ctx, ratelimit.Messages, "7"), &ce)
	assert.Equal(t, 1, ce.RetryAfterSeconds, "half a second rounds up to one")
	assert.Equal(t, "Too many requests, try again in 1 second", ce.Message)

	now = now.Add(500 * time.Millisecond)
	assert.NoError(t, p.Check(ctx, ratelimit.Messages, "7"), "the window ended")

	for range 100 {
		require.NoError(t, p.Check(ctx, ratelimit.Typing, "7"), "a zero rule is unlimited")
		require.NoError(t, p.Check(ctx, ratelimit.Signals, "7"), "a missing rule is unlimited")
	}
}

func TestNilPolicyLimitsNothing(t *testing.T) {
	var p *ratelimit.Policy
	assert.NoError(t, p.Check(t.Context(), ratelimit.Messages, "7"))
	assert.True(t, p.Rule(ratelimit.Messages).Unlimited())
}

// brokenLimiter fails every take, as redis.RateLimiter does while Redis is down.
type brokenLimiter struct{ calls int }

func (b *brokenLimiter) Take(context.Context, string, ratelimit.Rule) (bool, time.Duration, error) {
	b.calls++
	return false, 0, core.Wrap(core.Unavailable, "redis unavailable", errors.New("connection refused"))
}

func (b *brokenLimiter) Refund(context.Context, string, ratelimit.Rule) error {
	b.calls++
	return core.Wrap(core.Unavailable, "redis unavailable", errors.New("connection refused"))
}

func TestPolicyWhenTheLimiterFails(t *testing.T) {
	b := &brokenLimiter{}
	p := ratelimit.NewPolicy(b, ratelimit.Defaults(), slog.New(slog.DiscardHandler))
	for _, n := range ratelimit.Names {
		t.Run(string(n), func(t *testing.T) {
			err := p.Check(t.Context(), n, "k")
			switch n {
			case ratelimit.LoginIP, ratelimit.LoginEmail:
				assert.Equal(t, core.Unavailable, core.KindOf(err), "login fails closed: %v", err)
			default:
				assert.NoError(t, err, "fails open")
			}
		})
	}
	assert.Equal(t, len(ratelimit.Names), b.calls)

	// A refund that fails is logged: the login it refunds has succeeded.
	p.Refund(t.Context(), ratelimit.LoginEmail, "k")
	assert.Equal(t, len(ratelimit.Names)+1, b.calls)
}

// recordingLimiter remembers the keys it was asked about.
type recordingLimiter struct{ keys []string }

func (r *recordingLimiter) Take(_ context.Context, key string, _ ratelimit.Rule) (bool, time.Duration, error) {
	r.keys = append(r.keys, key)
	return true, 0, nil
}

func (r *recordingLimiter) Refund(_ context.Context, key string, _ ratelimit.Rule) error {
	r.keys = append(r.keys, "refund "+key)
	return nil
}

func TestPolicyKeysAreBoundedAndOpaque(t *testing.T) {
	r := &recordingLimiter{}
	p := ratelimit.NewPolicy(r, ratelimit.Defaults(), nil)
	long := string(make([]byte, 1<<20))
	for _, k := range []string{"alice@example.com", long, "alice@example.com"} {
		require.NoError(t, p.Check(t.Context(), ratelimit.LoginEmail, k))
	}
	require.NoError(t, p.Check(t.Context(), ratelimit.LoginIP, "alice@example.com"))
	require.Len(t, r.keys, 4)
	for _, k := range r.keys {
		assert.NotContains(t, k, "alice", "no personal data in key names")
		assert.Less(t, len(k), 64)
	}
	assert.Equal(t, r.keys[0], r.keys[2], "same key, same counter")
	assert.NotEqual(t, r.keys[0], r.keys[1])
	assert.NotEqual(t, r.keys[0], r.keys[3], "rules do not share counters")

	p.Refund(t.Context(), ratelimit.LoginEmail, "alice@example.com")
	assert.Equal(t, "refund "+r.keys[0], r.keys[4], "a refund goes to the counter the check took from")
}
