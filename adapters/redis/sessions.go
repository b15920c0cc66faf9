package redis

import (
	"context"
	"time"

	"github.com/redis/rueidis"
)

// Sessions keeps the cable sessions that clients of the extended protocol
// resume, at <prefix>cable-session:<sid>, shared by every instance: a
// client whose instance stopped resumes on another.
type Sessions struct{ c *Client }

// NewSessions returns Sessions on c.
func NewSessions(c *Client) *Sessions { return &Sessions{c: c} }

// Save keeps state under sid for ttl.
func (s *Sessions) Save(ctx context.Context, sid string, state []byte, ttl time.Duration) error {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	cmd := s.c.rdb.B().Set().Key(s.c.key("cable-session:", sid)).Value(rueidis.BinaryString(state)).Px(ttl).Build()
	return s.c.fail(ctx, opSession, s.c.rdb.Do(ctx, cmd).Error())
}

// Take returns and deletes what sid holds, in one step, so that two
// connections racing with one sid cannot both resume it.
func (s *Sessions) Take(ctx context.Context, sid string) ([]byte, error) {
	ctx, cancel := s.c.bound(ctx)
	defer cancel()
	b, err := s.c.rdb.Do(ctx, s.c.rdb.B().Getdel().Key(s.c.key("cable-session:", sid)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.c.fail(ctx, opSession, err)
	}
	return b, nil
}
