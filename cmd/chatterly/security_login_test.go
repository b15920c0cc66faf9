package main_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

const (
	invalidCredentials = `{"error":"Invalid Email or password."}`
	lockedBody         = `{"error":"Your account is locked."}`
)

func (s *stack) tryLogin(email, password string) response {
	s.t.Helper()
	return s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": email, "password": password}})
}

// Lockout: ten consecutive failures lock an account for an hour, whatever
// the password, whoever asks and however the email is spelled; other
// accounts and open sessions are not touched. TestLockoutOverHTTP holds
// the basic case.
func TestSecurityLockout(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))

		t.Run("consecutive: a success resets the count", func(t *testing.T) {
			a := s.register("reset")
			for range 3 {
				for range 9 {
					require.Equal(t, http.StatusUnauthorized, s.tryLogin(a.email, "wrong-password").status)
				}
				r := s.tryLogin(a.email, a.password)
				require.Equal(t, http.StatusOK, r.status, "nine failures do not lock: %s", r.raw)
			}
		})

		t.Run("ten failures lock, whatever the password and the spelling", func(t *testing.T) {
			a := s.register("locked")
			other := s.register("bystander")
			spellings := []string{a.email, strings.ToUpper(a.email), "  " + a.email + " ", strings.ToUpper(a.email[:1]) + a.email[1:]}
			for i := range 10 {
				r := s.tryLogin(spellings[i%len(spellings)], "wrong-password")
				require.Equal(t, http.StatusUnauthorized, r.status)
				assert.JSONEq(t, invalidCredentials, string(r.raw), "failure %d", i+1)
			}
			for _, pw := range []string{a.password, "wrong-password", ""} {
				r := s.tryLogin(a.email, pw)
				assert.Equal(t, http.StatusUnauthorized, r.status, "password %q: %s", pw, r.raw)
				if pw != "" {
					assert.JSONEq(t, lockedBody, string(r.raw), "password %q", pw)
				}
				assert.Empty(t, r.header.Get("Authorization"))
			}
			assert.Equal(t, http.StatusOK, s.tryLogin(other.email, other.password).status, "other accounts are open")
			assert.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", a.token, nil).status, "open sessions stay")
			s.cable(t, a).mustConfirm(t, userIdent)
		})

		t.Run("concurrent failures are all counted", func(t *testing.T) {
			a := s.register("burst")
			var wg sync.WaitGroup
			statuses := make(chan int, 30)
			for range 30 {
				wg.Go(func() {
					statuses <- s.tryLogin(a.email, "wrong-password").status
				})
			}
			wg.Wait()
			close(statuses)
			for st := range statuses {
				require.Equal(t, http.StatusUnauthorized, st)
			}
			r := s.tryLogin(a.email, a.password)
			assert.Equal(t, http.StatusUnauthorized, r.status, "thirty parallel guesses lock the account: %s", r.raw)
			assert.JSONEq(t, lockedBody, string(r.raw))
		})

		t.Run("the lock lasts an hour", func(t *testing.T) {
			if m.name != "real" {
				t.Skip("the clock can only be moved in the database")
			}
			a := s.register("hour")
			for range 10 {
				require.Equal(t, http.StatusUnauthorized, s.tryLogin(a.email, "wrong-password").status)
			}
			conn, err := pgx.Connect(context.Background(), s.cfg.DatabaseURL)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			lockedFor := func(ago time.Duration) {
				tag, err := conn.Exec(context.Background(), "UPDATE users SET locked_at = $2 WHERE id = $1 AND locked_at IS NOT NULL", a.id, time.Now().Add(-ago))
				require.NoError(t, err)
				require.EqualValues(t, 1, tag.RowsAffected(), "the account is locked")
			}
			lockedFor(59 * time.Minute)
			r := s.tryLogin(a.email, a.password)
			assert.Equal(t, http.StatusUnauthorized, r.status, "locked for 59 minutes: %s", r.raw)
			assert.JSONEq(t, lockedBody, string(r.raw))
			lockedFor(61 * time.Minute)
			r = s.tryLogin(a.email, a.password)
			require.Equal(t, http.StatusOK, r.status, "free after an hour: %s", r.raw)
			// The count started again: one failure does not lock.
			require.Equal(t, http.StatusUnauthorized, s.tryLogin(a.email, "wrong-password").status)
			assert.Equal(t, http.StatusOK, s.tryLogin(a.email, a.password).status)
		})
	})
}

// An unknown email and a wrong password get the same answer: status, body
// and headers. (A locked account says so, as api.md requires: that tells
// an attacker who locked it that the account exists.)
func TestSecurityLoginAnswersAlike(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		a := s.register("alice")
		long := strings.Repeat("p", 100)
		cases := map[string]response{
			"wrong password":                 s.tryLogin(a.email, "wrong-password"),
			"wrong password, other spelling": s.tryLogin(strings.ToUpper(a.email), "wrong-password"),
			"unknown email":                  s.tryLogin("nobody@example.com", "wrong-password"),
			"unknown email, right password":  s.tryLogin("nobody@example.com", a.password),
			"wrong password over 72 bytes":   s.tryLogin(a.email, long),
			"unknown email, long password":   s.tryLogin("nobody@example.com", long),
			"right password with a suffix":   s.tryLogin(a.email, a.password+" "),
			"right password, other case":     s.tryLogin(a.email, strings.ToUpper(a.password)),
		}
		ref := cases["unknown email"]
		require.Equal(t, http.StatusUnauthorized, ref.status)
		require.JSONEq(t, invalidCredentials, string(ref.raw))
		for name, r := range cases {
			assert.Equal(t, ref.status, r.status, name)
			assert.Equal(t, string(ref.raw), string(r.raw), name)
			assert.Equal(t, headerNames(ref.header), headerNames(r.header), name)
			assert.Equal(t, ref.header.Get("Content-Type"), r.header.Get("Content-Type"), name)
			assert.Empty(t, r.header.Get("Authorization"), name)
		}
	})
}

func headerNames(h http.Header) []string {
	out := make([]string, 0, len(h))
	for k := range h {
		if k != "Date" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Every failed login pays for a bcrypt comparison, so that the time taken
// does not tell whether an email has an account. core/auth calls bcrypt
// directly (no hasher is injected), so the comparisons cannot be counted;
// instead each login must take at least a third of the fastest comparison
// measured here at the same cost. That bound only fails when a comparison
// is skipped: a loaded machine makes logins slower, not faster.
func TestSecurityLoginAlwaysHashes(t *testing.T) {
	// Enough rounds that a comparison stands out from the rest of a login
	// (~20 ms, several times that under -race), few enough for CI.
	const cost = 8
	hash, err := bcrypt.GenerateFromPassword([]byte("some password"), cost)
	require.NoError(t, err)
	fastest := time.Hour
	for range 3 {
		began := time.Now()
		_ = bcrypt.CompareHashAndPassword(hash, []byte("another password"))
		fastest = min(fastest, time.Since(began))
	}
	floor := fastest / 3
	eachMode(t, func(t *testing.T, m mode) {
		cfg := secConfig(t, m)
		cfg.BcryptCost = cost
		s := start(t, cfg)
		a := s.register("alice")
		locked := s.register("locked")
		for range 10 {
			s.tryLogin(locked.email, "wrong-password")
		}
		long := strings.Repeat("p", 100)
		cases := []struct {
			name, email, password string
		}{
			{name: "unknown email", email: "nobody@example.com", password: "wrong-password"},
			{name: "wrong password", email: a.email, password: "wrong-password"},
			{name: "unknown email, password over 72 bytes", email: "nobody@example.com", password: long},
			{name: "wrong password over 72 bytes", email: a.email, password: long},
			{name: "right password plus bytes past 72", email: a.email, password: a.password + long},
			{name: "locked account, right password", email: locked.email, password: locked.password},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				began := time.Now()
				r := s.tryLogin(tc.email, tc.password)
				took := time.Since(began)
				require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
				assert.GreaterOrEqual(t, took, floor, "a bcrypt comparison (%s at cost %d) ran", fastest, cost)
			})
		}
	})
}
