package chat

import (
	"time"

	"github.com/chatterly/chatterly/core"
)

// Position is where an event sits in its stream's history, for clients of
// the extended cable protocol that resume where they left off. Offsets
// count a stream's events from 1 within one Epoch. A new epoch begins when
// the history is lost (expired while the stream was idle, Redis flushed):
// an offset is meaningful only with its epoch, so a client holding one of
// a lost history is told to catch up another way instead of being served
// the wrong events.
type Position struct {
	Epoch  string
	Offset uint64
}

// IsZero reports whether p names no place: a transient event, or a broker
// that keeps no history.
func (p Position) IsZero() bool { return p.Epoch == "" }

// Record is one event of a stream's history, as it was delivered live.
type Record struct {
	Payload  []byte
	Eviction Eviction
	Position Position
	At       time.Time // when it was published, to the millisecond
}

// HistoryConfig bounds what a broker keeps of each stream, by count and by
// age; a Limit of 0 keeps nothing and publishes without positions.
type HistoryConfig struct {
	Limit int
	TTL   time.Duration
}

// Defaults of HistoryConfig: a conversation that had 500 events in ten
// minutes is a busy one, and a client gone longer than that reloads.
const (
	DefaultHistoryLimit = 500
	DefaultHistoryTTL   = 10 * time.Minute
)

// ErrHistoryLost is a broker's answer when the events asked for cannot all
// be given: the client must catch up another way (REST).
var ErrHistoryLost = core.E(core.NotFound, "stream history lost")
