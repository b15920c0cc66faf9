package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/core/chat"
)

// A stream's history is a Redis Stream at <prefix>history:<stream>, shared
// by every instance and kept across their restarts. Its entry IDs are
// <epoch>-<offset>: the epoch is the millisecond the history began, so a
// history expired or flushed and begun again has another, and an offset
// is found by ID alone. Each entry holds the publish time (t, Unix ms) and
// the sealed message (p) as the pub/sub channel carries it.
//
// recordScript appends and publishes in one step, so that positions are
// handed out in the order in which Redis delivers the publishes.
// KEYS[1] the history; ARGV[1] the channel, ARGV[2] the sealed message,
// ARGV[3] the count bound, ARGV[4] the age bound in milliseconds. It trims
// at most a few entries by age per call (all that are due, over the calls),
// so a publish never pays for a long backlog; the key expires once idle
// for the age bound. It returns the new entry's ID.
var recordScript = rueidis.NewLuaScript(nowMillis + `
local epoch, offset
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then
  epoch, offset = nows, 1
else
  local id = last[1][1]
  local dash = string.find(id, '-', 1, true)
  epoch, offset = string.sub(id, 1, dash - 1), tonumber(string.sub(id, dash + 1)) + 1
end
local id = epoch .. '-' .. string.format('%.0f', offset)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], id, 't', nows, 'p', ARGV[2])
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 8)
local keep = head[#head][1]
for i = 1, #head do
  if now - tonumber(head[i][2][2]) <= tonumber(ARGV[4]) then keep = head[i][1]; break end
end
if keep ~= head[1][1] then redis.call('XTRIM', KEYS[1], 'MINID', keep) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], 'h' .. id .. ':' .. ARGV[2])
return id
`)

// KeepHistory makes the Broker keep each stream's recent events within h
// (see chat.HistoryConfig). Call it before the first publish. With a Limit
// of 0 (the default) events go out as before, without positions: that is
// the setting for a rolling upgrade from a version that kept no history,
// whose instances drop the positioned messages they cannot read.
func (b *Broker) KeepHistory(h chat.HistoryConfig) { b.hist = h }

func (b *Broker) historyKey(stream string) string { return b.c.key("history:", stream) }

// record publishes a sealed message through recordScript.
func (b *Broker) record(ctx context.Context, stream, sealed string) error {
	err := recordScript.Exec(ctx, b.c.rdb, []string{b.historyKey(stream)}, []string{
		b.prefix + stream, sealed, strconv.Itoa(b.hist.Limit), strconv.FormatInt(b.hist.TTL.Milliseconds(), 10),
	}).Error()
	return b.c.fail(ctx, opPublish, err)
}

// unsealPositioned splits a message that recordScript published: 'h', the
// entry ID, ':', then what seal made.
func unsealPositioned(msg string) (payload []byte, ev chat.Eviction, pos chat.Position, ok bool) {
	id, sealed, found := strings.Cut(msg[1:], ":")
	if !found {
		return nil, ev, pos, false
	}
	if pos, ok = parseEntryID(id); !ok {
		return nil, ev, pos, false
	}
	payload, ev, ok = unseal(sealed)
	return payload, ev, pos, ok
}

func parseEntryID(id string) (chat.Position, bool) {
	epoch, offset, found := strings.Cut(id, "-")
	n, err := strconv.ParseUint(offset, 10, 64)
	if !found || err != nil || epoch == "" {
		return chat.Position{}, false
	}
	return chat.Position{Epoch: epoch, Offset: n}, true
}

// History returns the stream's events after the position, oldest first.
// chat.ErrHistoryLost when they cannot all be given: another epoch (the
// history expired or was flushed since), or older events trimmed away.
func (b *Broker) History(ctx context.Context, stream string, after chat.Position) ([]chat.Record, error) {
	if b.hist.Limit <= 0 {
		return nil, chat.ErrHistoryLost
	}
	ctx, cancel := b.c.bound(ctx)
	defer cancel()
	key := b.historyKey(stream)
	from := "(" + after.Epoch + "-" + strconv.FormatUint(after.Offset, 10)
	res := b.c.rdb.DoMulti(ctx,
		b.c.rdb.B().Xrange().Key(key).Start("-").End("+").Count(1).Build(),
		b.c.rdb.B().Xrange().Key(key).Start(from).End("+").Build())
	first, err := res[0].AsXRange()
	if err != nil {
		return nil, b.c.fail(ctx, opPublish, err)
	}
	if len(first) == 0 {
		return nil, chat.ErrHistoryLost
	}
	oldest, ok := parseEntryID(first[0].ID)
	if !ok || oldest.Epoch != after.Epoch || oldest.Offset > after.Offset+1 {
		return nil, chat.ErrHistoryLost
	}
	entries, err := res[1].AsXRange()
	if err != nil {
		return nil, b.c.fail(ctx, opPublish, err)
	}
	return records(entries)
}

// HistorySince returns the stream's events published at since or later,
// oldest first. chat.ErrHistoryLost when some of them may be gone.
func (b *Broker) HistorySince(ctx context.Context, stream string, since time.Time) ([]chat.Record, error) {
	if b.hist.Limit <= 0 || time.Since(since) > b.hist.TTL {
		return nil, chat.ErrHistoryLost
	}
	ctx, cancel := b.c.bound(ctx)
	defer cancel()
	// Clients ask since their last ping, seconds ago: the newest few
	// entries usually reach back past since, and the rest of the history
	// is not read.
	key := b.historyKey(stream)
	entries, err := b.c.rdb.Do(ctx, b.c.rdb.B().Xrevrange().Key(key).End("+").Start("-").Count(sinceProbe).Build()).AsXRange()
	if err == nil && len(entries) == sinceProbe && !olderThan(entries[len(entries)-1], since) {
		entries, err = b.c.rdb.Do(ctx, b.c.rdb.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
	} else {
		slices.Reverse(entries)
	}
	if err != nil {
		return nil, b.c.fail(ctx, opPublish, err)
	}
	recs, err := records(entries)
	if err != nil {
		return nil, err
	}
	i := 0
	for i < len(recs) && recs[i].At.Before(since) {
		i++
	}
	if i == 0 && len(recs) > 0 && recs[0].Position.Offset > 1 {
		return nil, chat.ErrHistoryLost // what was trimmed before the oldest may be later than since
	}
	return recs[i:], nil
}

// sinceProbe is how many of the newest entries HistorySince reads first.
const sinceProbe = 16

// olderThan reports whether the entry was published before t.
func olderThan(e rueidis.XRangeEntry, t time.Time) bool {
	ms, err := strconv.ParseInt(e.FieldValues["t"], 10, 64)
	return err == nil && time.UnixMilli(ms).Before(t)
}

func records(entries []rueidis.XRangeEntry) ([]chat.Record, error) {
	recs := make([]chat.Record, 0, len(entries))
	for _, e := range entries {
		pos, ok := parseEntryID(e.ID)
		ms, err := strconv.ParseInt(e.FieldValues["t"], 10, 64)
		if !ok || err != nil {
			return nil, chat.ErrHistoryLost // not ours: nothing else writes under our prefix
		}
		payload, ev, ok := unseal(e.FieldValues["p"])
		if !ok {
			return nil, chat.ErrHistoryLost
		}
		recs = append(recs, chat.Record{Payload: payload, Eviction: ev, Position: pos, At: time.UnixMilli(ms)})
	}
	return recs, nil
}
