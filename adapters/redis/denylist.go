package redis

import (
	"context"
	"time"

	"github.com/chatterly/chatterly/core/auth"
)

var _ auth.Denylist = (*Denylist)(nil)

// Denylist keeps revoked token ids in Redis, one key per id
// (<prefix>jwt:denylist:<jti>) that expires with the token, so every
// instance refuses a token once any of them has revoked it.
type Denylist struct {
	c *Client
}

// NewDenylist returns a Denylist stored through c.
func NewDenylist(c *Client) *Denylist { return &Denylist{c: c} }

// Revoke denies jti until until. A token that has already expired is
// refused by its exp claim anyway, so nothing is stored for it.
// Unavailable when Redis cannot be reached.
func (d *Denylist) Revoke(ctx context.Context, jti string, until time.Time) error {
	ttl := time.Until(until)
	if ttl <= 0 {
		return nil
	}
	// PX takes whole milliseconds; rounding up keeps the entry at least as long as the token.
	ms := (ttl + time.Millisecond - 1).Milliseconds()
	ctx, cancel := d.c.bound(ctx)
	defer cancel()
	rdb := d.c.rdb
	cmd := rdb.B().Set().Key(d.key(jti)).Value("1").PxMilliseconds(ms).Build()
	return d.c.fail(ctx, opDenylist, rdb.Do(ctx, cmd).Error())
}

// Revoked reports whether jti is denied. Unavailable when Redis cannot be
// reached: the caller must not take that for "not revoked".
func (d *Denylist) Revoked(ctx context.Context, jti string) (bool, error) {
	ctx, cancel := d.c.bound(ctx)
	defer cancel()
	rdb := d.c.rdb
	n, err := rdb.Do(ctx, rdb.B().Exists().Key(d.key(jti)).Build()).AsInt64()
	if err != nil {
		return false, d.c.fail(ctx, opDenylist, err)
	}
	return n > 0, nil
}

func (d *Denylist) key(jti string) string { return d.c.key("jwt:denylist:", jti) }
