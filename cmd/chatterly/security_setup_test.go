package main_test

import (
	"testing"
	"time"

	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// secConfig is m's configuration for the security suites. Rate limits are
// off: the suites register many users and fail logins on purpose, and what
// they test (authorization, lockout, equal answers) must hold without a
// limiter in front of it. Calls ring for an hour so that a suite's state
// does not change under it when a call would be missed.
func secConfig(t *testing.T, m mode) main.Config {
	t.Helper()
	cfg := m.config(t)
	cfg.RateLimitsOff = true
	cfg.CallRingTimeout = time.Hour
	return cfg
}
