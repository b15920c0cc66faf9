package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/ratelimit"
)

var _ ratelimit.Limiter = (*RateLimiter)(nil)

// RateLimiter counts fixed windows in Redis, one key per limited key
// (<prefix>ratelimit:<key>) that expires with its window, so that every
// instance counts against the same limit.
type RateLimiter struct {
	c *Client
}

// NewRateLimiter returns a RateLimiter stored through c.
func NewRateLimiter(c *Client) *RateLimiter { return &RateLimiter{c: c} }

// takeScript counts a take within ARGV[2] (the limit) and returns what the
// count would be with it and the milliseconds left in the window. It runs
// atomically, so concurrent takes from any instance each see a distinct
// count. The window starts with the first take: the expiry is set only with
// the key, so denied takes do not extend it. Denied takes are not counted,
// as in memory.RateLimiter, so that a Refund frees a take whatever was
// denied meanwhile. A key without an expiry cannot otherwise arise, but
// would never reset: it gets one.
var takeScript = rueidis.NewLuaScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
  return {1, tonumber(ARGV[1])}
end
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
local n = tonumber(redis.call('GET', KEYS[1])) or 0
if n < tonumber(ARGV[2]) then
  redis.call('INCR', KEYS[1])
end
return {n + 1, ttl}
`)

// Take implements ratelimit.Limiter. Unavailable when Redis cannot be
// reached; Internal for an unlimited rule or an unexpected reply.
//
// The script is not retried after a network error: the first attempt may
// have counted, and a retry would count the take twice.
func (l *RateLimiter) Take(ctx context.Context, key string, rule ratelimit.Rule) (bool, time.Duration, error) {
	if rule.Unlimited() {
		return false, 0, core.E(core.Internal, "rate limiter: Take with an unlimited rule")
	}
	// PEXPIRE takes whole milliseconds; rounding up never shortens a window.
	ms := max((rule.Window + time.Millisecond - 1).Milliseconds(), 1)
	ctx, cancel := l.c.bound(ctx)
	defer cancel()
	reply, err := takeScript.Exec(ctx, l.c.rdb, []string{l.c.key("ratelimit:", key)}, []string{strconv.FormatInt(ms, 10), strconv.Itoa(rule.Limit)}).ToArray()
	if err != nil {
		return false, 0, l.c.fail(ctx, opRateLimit, err)
	}
	if len(reply) != 2 {
		return false, 0, core.E(core.Internal, "rate limiter: unexpected script reply")
	}
	n, err := reply[0].AsInt64()
	if err != nil {
		return false, 0, l.c.fail(ctx, opRateLimit, err)
	}
	if n <= int64(rule.Limit) {
		return true, 0, nil
	}
	ttl, err := reply[1].AsInt64()
	if err != nil {
		return false, 0, l.c.fail(ctx, opRateLimit, err)
	}
	return false, min(max(time.Duration(ttl)*time.Millisecond, time.Millisecond), rule.Window), nil
}

// refundScript takes one back from a window that is still open and counts
// anything: the key's expiry is left alone, so the window ends when it
// would have.
var refundScript = rueidis.NewLuaScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
`)

// Refund implements ratelimit.Limiter. Unavailable when Redis cannot be
// reached; Internal for an unlimited rule.
func (l *RateLimiter) Refund(ctx context.Context, key string, rule ratelimit.Rule) error {
	if rule.Unlimited() {
		return core.E(core.Internal, "rate limiter: Refund with an unlimited rule")
	}
	ctx, cancel := l.c.bound(ctx)
	defer cancel()
	if err := refundScript.Exec(ctx, l.c.rdb, []string{l.c.key("ratelimit:", key)}, nil).Error(); err != nil {
		return l.c.fail(ctx, opRateLimit, err)
	}
	return nil
}
