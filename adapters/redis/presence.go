package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/presence"
)

var _ presence.Tracker = (*Presence)(nil)

// Presence keeps one sorted set per user (<prefix>presence:<userID>) whose
// members are connection ids scored by their expiry in Unix milliseconds.
// Expiries are computed from Redis's own clock inside Lua scripts, so
// instances whose clocks disagree still agree on who is online, and each
// check-and-update is atomic.
type Presence struct {
	c *Client
}

// NewPresence returns a Presence stored through c.
func NewPresence(c *Client) *Presence { return &Presence{c: c} }

// nowMillis is the prelude of every script: the server's time in Unix
// milliseconds, as a number and as an integer string. Scores and PEXPIREAT
// get the string because Redis would print a large Lua number in exponent
// form, which PEXPIREAT refuses.
const nowMillis = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%.0f', now)
`

// touchScript: KEYS[1] the user's set; ARGV[1] the connection, ARGV[2] the
// TTL in milliseconds. It returns 1 when no entry of the user, this one
// included, was live before (the user came online), else 0. The key lives
// as long as its latest entry, so a user whose connections all vanish
// without leaving costs nothing for long.
var touchScript = rueidis.NewLuaScript(nowMillis + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
local live = redis.call('ZCARD', KEYS[1])
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', expiry), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.max(expiry, tonumber(top[2]))))
if live == 0 then return 1 end
return 0
`)

// leaveScript: KEYS[1] the user's set; ARGV[1] the connection. It returns 1
// when no live entry is left (the user went offline), else 0.
var leaveScript = rueidis.NewLuaScript(nowMillis + `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
if redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
`)

// onlineScript: KEYS the users' sets. It returns, for each key in order, the
// number of live entries. Expired entries are only skipped, not removed, so
// the script stays read-only.
var onlineScript = rueidis.NewLuaScriptReadOnly(nowMillis + `
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, '(' .. nows, '+inf')
end
return counts
`)

// Touch creates or renews the entry of connID for userID until the
// server's now+ttl and reports whether the user came online. TTLs are kept
// to the millisecond, rounded up. Unavailable when Redis cannot be reached.
func (p *Presence) Touch(ctx context.Context, userID int64, connID string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, core.E(core.Internal, "presence: ttl must be positive")
	}
	ms := (ttl + time.Millisecond - 1).Milliseconds()
	ctx, cancel := p.c.bound(ctx)
	defer cancel()
	n, err := touchScript.Exec(ctx, p.c.rdb, []string{p.key(userID)}, []string{connID, strconv.FormatInt(ms, 10)}).AsInt64()
	if err != nil {
		return false, translate(err)
	}
	return n == 1, nil
}

// Leave removes the entry of connID and reports whether the user has no
// live entry left. Unavailable when Redis cannot be reached.
func (p *Presence) Leave(ctx context.Context, userID int64, connID string) (bool, error) {
	ctx, cancel := p.c.bound(ctx)
	defer cancel()
	n, err := leaveScript.Exec(ctx, p.c.rdb, []string{p.key(userID)}, []string{connID}).AsInt64()
	if err != nil {
		return false, translate(err)
	}
	return n == 1, nil
}

// Online reports, for every id, whether the user has a live entry, with one
// script call whatever the number of ids. The script reads every key at
// once, which needs them on one node: true of a single Redis, not of a
// cluster. Unavailable when Redis cannot be reached.
func (p *Presence) Online(ctx context.Context, ids []int64) (map[int64]bool, error) {
	online := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return online, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = p.key(id)
	}
	ctx, cancel := p.c.bound(ctx)
	defer cancel()
	counts, err := onlineScript.Exec(ctx, p.c.rdb, keys, nil).AsIntSlice()
	if err != nil {
		return nil, translate(err)
	}
	if len(counts) != len(ids) {
		return nil, core.E(core.Internal, "presence: online script returned "+strconv.Itoa(len(counts))+" counts for "+strconv.Itoa(len(ids))+" ids")
	}
	for i, id := range ids {
		online[id] = online[id] || counts[i] > 0
	}
	return online, nil
}

func (p *Presence) key(userID int64) string {
	return p.c.key("presence:", strconv.FormatInt(userID, 10))
}
