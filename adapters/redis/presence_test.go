package redis_test

import (
	"testing"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/presence/presencetest"
)

func TestPresence(t *testing.T) {
	presencetest.RunTracker(t, func(t *testing.T) presence.Tracker {
		return redis.NewPresence(redistest.New(t))
	})
}
