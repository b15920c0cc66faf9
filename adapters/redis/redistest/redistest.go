// Package redistest connects tests to the Redis named by
// CHATTERLY_TEST_REDIS_URL, each with keys of its own.
package redistest

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/adapters/redis"
)

// Environment variables read by this package.
const (
	// EnvURL names the Redis to test against, e.g. redis://127.0.0.1:6379/0.
	EnvURL = "CHATTERLY_TEST_REDIS_URL"
	// EnvRequire, when "1" (as in CI), turns a missing EnvURL from a skip
	// into a failure, so that a misconfigured CI cannot pass by skipping.
	EnvRequire = "CHATTERLY_TEST_REQUIRE_SERVICES"
)

// URL returns the test Redis URL. Without one it skips t, or fails it when
// services are required.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u != "" {
		return u
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s is not set and %s=1", EnvURL, EnvRequire)
	}
	t.Skipf("%s is not set", EnvURL)
	return ""
}

// New returns a Client of the test Redis whose keys start with a random
// prefix, so tests that run in parallel, in this package or in others, never
// see each other's keys. When t ends, the keys under the prefix are deleted
// and the client is closed.
func New(t testing.TB) *redis.Client {
	t.Helper()
	u := URL(t)
	prefix := "chatterlytest:" + rand.Text() + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := redis.Open(ctx, u, prefix)
	if err != nil {
		t.Fatalf("redistest: open %s: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := deleteKeys(u, prefix); err != nil {
			t.Errorf("redistest: delete keys %s*: %v", prefix, err)
		}
	})
	return c
}

// deleteKeys removes every key under prefix through a client of its own:
// redis.Client deliberately has no way to list or delete arbitrary keys.
func deleteKeys(redisURL, prefix string) error {
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	opt.DisableCache = true
	rdb, err := rueidis.NewClient(opt)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := rdb.Do(ctx, rdb.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		if len(e.Elements) > 0 {
			if err := rdb.Do(ctx, rdb.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return err
			}
		}
		if e.Cursor == 0 {
			return nil
		}
		cursor = e.Cursor
	}
}
