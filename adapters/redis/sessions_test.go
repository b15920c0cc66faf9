package redis_test

import (
	"testing"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/ports/ws/wstest"
)

func TestSessions(t *testing.T) {
	wstest.RunSessions(t, func(t *testing.T) wstest.Sessions { return redis.NewSessions(redistest.New(t)) })
}
