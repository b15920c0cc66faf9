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
// members are connection ids scored by their expiry in Unix milliseconds,
// and one sorted set for all users (<prefix>presence:lapse) whose members
// are user ids scored by the expiry of their latest entry, where Lapsed
// finds the users who vanished without leaving. Expiries are computed from
// Redis's own clock inside Lua scripts, so instances whose clocks disagree
// still agree on who is online, and each check-and-update is atomic.
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

// touchScript: KEYS[1] the user's set, KEYS[2] the lapse set; ARGV[1] the
// connection, ARGV[2] the TTL in milliseconds, ARGV[3] the user id. It
// returns 1 when no entry of the user, this one included, was live before
// (the user came online), else 0. The key lives as long as its latest
// entry, so a user whose connections all vanish without leaving costs
// nothing for long; the lapse set holds that latest expiry until Lapsed
// reports the user.
var touchScript = rueidis.NewLuaScript(nowMillis + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
local live = redis.call('ZCARD', KEYS[1])
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', expiry), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local latest = string.format('%.0f', math.max(expiry, tonumber(top[2])))
redis.call('PEXPIREAT', KEYS[1], latest)
redis.call('ZADD', KEYS[2], latest, ARGV[3])
if live == 0 then return 1 end
return 0
`)

// leaveScript: KEYS[1] the user's set, KEYS[2] the lapse set; ARGV[1] the
// connection, ARGV[2] the user id. It returns 1 when no live entry is left
// (the user went offline), else 0. A user who went offline leaves the lapse
// set, since the caller of Leave announces them; one who did not is
// rescored to their latest remaining expiry.
var leaveScript = rueidis.NewLuaScript(nowMillis + `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('ZADD', KEYS[2], top[2], ARGV[2])
return 0
`)

// lapsedBatch bounds the users that one run of lapsedScript looks at, so
// that sweeping after a whole instance died does not block Redis for long.
const lapsedBatch = 500

// lapsedScript: KEYS[1] the lapse set; ARGV[1] the prefix of the users'
// sets, ARGV[2] the batch size. It takes up to a batch of the users whose
// latest known expiry has passed, and returns how many it took followed by
// the ids of those who have no live entry, whom it removes from the lapse
// set; those with a live entry again are rescored to their latest expiry.
// Being one script, it hands each lapsed user to exactly one caller. It
// reads the users' sets by name, which needs them on the node of the lapse
// set: true of a single Redis, not of a cluster.
var lapsedScript = rueidis.NewLuaScript(nowMillis + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nows, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {tostring(#due)}
for _, user in ipairs(due) do
  local key = ARGV[1] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', nows)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('ZREM', KEYS[1], user)
    out[#out + 1] = user
  else
    redis.call('ZADD', KEYS[1], top[2], user)
  end
end
return out
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
	n, err := touchScript.Exec(ctx, p.c.rdb, []string{p.key(userID), p.lapseKey()}, []string{connID, strconv.FormatInt(ms, 10), strconv.FormatInt(userID, 10)}).AsInt64()
	if err != nil {
		return false, p.c.fail(ctx, opPresence, err)
	}
	return n == 1, nil
}

// Leave removes the entry of connID and reports whether the user has no
// live entry left. Unavailable when Redis cannot be reached.
func (p *Presence) Leave(ctx context.Context, userID int64, connID string) (bool, error) {
	ctx, cancel := p.c.bound(ctx)
	defer cancel()
	n, err := leaveScript.Exec(ctx, p.c.rdb, []string{p.key(userID), p.lapseKey()}, []string{connID, strconv.FormatInt(userID, 10)}).AsInt64()
	if err != nil {
		return false, p.c.fail(ctx, opPresence, err)
	}
	return n == 1, nil
}

// Lapsed returns the users whose last entry expired without their leaving,
// each to one caller only, however many instances call at once, in batches
// of one script call each. Users whose entries expire while it runs may be
// left to the next call. Unavailable when Redis cannot be reached.
func (p *Presence) Lapsed(ctx context.Context) ([]int64, error) {
	ctx, cancel := p.c.bound(ctx)
	defer cancel()
	lapsed := []int64{}
	for {
		reply, err := lapsedScript.Exec(ctx, p.c.rdb, []string{p.lapseKey()}, []string{p.userKeyPrefix(), strconv.Itoa(lapsedBatch)}).AsStrSlice()
		if err != nil {
			err = p.c.fail(ctx, opPresence, err)
			// What earlier batches took is lost to every caller with
			// this error; report it rather than drop it.
			if len(lapsed) > 0 {
				return lapsed, nil
			}
			return nil, err
		}
		if len(reply) == 0 {
			return nil, core.E(core.Internal, "presence: lapsed script returned nothing")
		}
		taken, err := strconv.Atoi(reply[0])
		if err != nil {
			return nil, core.Wrap(core.Internal, "presence: lapsed script count", err)
		}
		for _, s := range reply[1:] {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, core.Wrap(core.Internal, "presence: lapsed script user id", err)
			}
			lapsed = append(lapsed, id)
		}
		if taken < lapsedBatch {
			return lapsed, nil
		}
	}
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
		return nil, p.c.fail(ctx, opPresence, err)
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
	return p.userKeyPrefix() + strconv.FormatInt(userID, 10)
}

// userKeyPrefix is the name of every user's set but the user id.
func (p *Presence) userKeyPrefix() string { return p.c.key("presence:") }

// lapseKey returns the name of the set of every user's latest expiry. Its
// name cannot be a user's: user set names end in a number.
func (p *Presence) lapseKey() string { return p.c.key("presence:lapse") }
