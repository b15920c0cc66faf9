// Package presence decides who is online: a user is online while any of
// their connections holds an unexpired entry.
package presence

import (
	"context"
	"time"
)

// Tracker stores presence entries, one per (user, connection), each with its
// own expiry. Implementations: redis.Presence, memory.Presence; both pass
// presencetest.RunTracker. Every method returns Unavailable when the store
// cannot be reached.
type Tracker interface {
	// Touch creates or renews the entry of connID for userID until now+ttl.
	// It reports whether the user had no live entry before (came online).
	Touch(ctx context.Context, userID int64, connID string, ttl time.Duration) (cameOnline bool, err error)
	// Leave removes the entry of connID. It reports whether the user has no
	// live entry left (went offline). Leaving twice is not an error.
	Leave(ctx context.Context, userID int64, connID string) (wentOffline bool, err error)
	// Lapsed returns the users whose last live entry has expired since the
	// previous call, each reported once across all instances sharing the
	// store (so that exactly one instance announces them offline). A user
	// who left with Leave, or who has a live entry again, is not reported.
	Lapsed(ctx context.Context) ([]int64, error)
	// Online reports, for each id, whether the user has a live entry, in one
	// round trip to the store however many ids there are. Ids that are not
	// online may be absent from the map.
	Online(ctx context.Context, ids []int64) (map[int64]bool, error)
}
