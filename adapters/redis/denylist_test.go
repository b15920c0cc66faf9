package redis_test

import (
	"testing"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/auth/authtest"
)

func TestDenylist(t *testing.T) {
	authtest.RunDenylist(t, func(t *testing.T) auth.Denylist {
		return redis.NewDenylist(redistest.New(t))
	})
}
