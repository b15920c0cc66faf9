package auth_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/users"
)

// fakeTokens signs by remembering claims under a counter, so that these
// tests exercise the service's rules and not JWT (adapters/token tests that).
type fakeTokens struct {
	mu     sync.Mutex
	issued map[string]auth.Claims
}

func (f *fakeTokens) Sign(c auth.Claims) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := "tok-" + strconv.Itoa(len(f.issued))
	f.issued[tok] = c
	return tok, nil
}

func (f *fakeTokens) Verify(tok string, now time.Time) (auth.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[tok]
	if !ok || !now.Before(c.ExpiresAt) {
		return auth.Claims{}, core.E(core.Unauthenticated, auth.MsgSignIn)
	}
	return c, nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc      *auth.Service
	store    *memory.UserStore
	denylist *memory.Denylist
	clock    *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: memory.NewUserStore(), denylist: memory.NewDenylist(), clock: &clock{now: time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)}}
	f.denylist.Now = f.clock.Now
	cfg := auth.DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	cfg.Now = f.clock.Now
	svc, err := auth.NewService(f.store, &fakeTokens{issued: map[string]auth.Claims{}}, f.denylist, cfg)
	require.NoError(t, err)
	f.svc = svc
	return f
}

func (f *fixture) register(t *testing.T, username string) auth.Session {
	t.Helper()
	s, err := f.svc.Register(context.Background(), auth.Registration{Email: username + "@example.com", Password: "password123", Username: username})
	require.NoError(t, err)
	return s
}

func details(t *testing.T, err error) []string {
	t.Helper()
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, core.Invalid, ce.Kind, "error: %v", err)
	return ce.Details
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dn := "Alice A."
	s, err := f.svc.Register(ctx, auth.Registration{Email: "  Alice@Example.COM ", Password: "password123", Username: "Alice_1", DisplayName: &dn})
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", s.User.Email)
	assert.Equal(t, "alice_1", s.User.Username)
	assert.Equal(t, &dn, s.User.DisplayName)
	assert.NotEmpty(t, s.Token)
	assert.Equal(t, s.User.ID, s.Claims.UserID)
	assert.Equal(t, 24*time.Hour, s.Claims.ExpiresAt.Sub(s.Claims.IssuedAt))
	assert.Len(t, s.Claims.ID, 36, "jti is a UUID")
	assert.NotEqual(t, "password123", s.User.PasswordHash)

	u, c, err := f.svc.Authenticate(ctx, s.Token)
	require.NoError(t, err)
	assert.Equal(t, s.User.ID, u.ID)
	assert.Equal(t, s.Claims, c)
}

func TestRegisterInvalid(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "taken")
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		reg  auth.Registration
		want []string
	}{
		{"all blank", auth.Registration{}, []string{"Email can't be blank", "Password can't be blank", "Username can't be blank"}},
		{"email without at", auth.Registration{Email: "nope", Password: "password123", Username: "bob"}, []string{"Email is invalid"}},
		{"email with space", auth.Registration{Email: "a b@c.d", Password: "password123", Username: "bob"}, []string{"Email is invalid"}},
		{"email too long", auth.Registration{Email: long(250) + "@x.io", Password: "password123", Username: "bob"}, []string{"Email is invalid"}},
		{"password 7", auth.Registration{Email: "b@x.io", Password: "1234567", Username: "bob"}, []string{"Password is too short (minimum is 8 characters)"}},
		{"password 129 characters", auth.Registration{Email: "b@x.io", Password: long(129), Username: "bob"}, []string{"Password is too long (maximum is 128 characters)"}},
		{"password 129 characters of two bytes", auth.Registration{Email: "b@x.io", Password: strings.Repeat("é", 129), Username: "bob"}, []string{"Password is too long (maximum is 128 characters)"}},
		{"password 7 characters but 21 bytes", auth.Registration{Email: "b@x.io", Password: strings.Repeat("日", 7), Username: "bob"}, []string{"Password is too short (minimum is 8 characters)"}},
		{"username short", auth.Registration{Email: "b@x.io", Password: "password123", Username: "bo"}, []string{"Username is too short (minimum is 3 characters)"}},
		{"username long", auth.Registration{Email: "b@x.io", Password: "password123", Username: long(31)}, []string{"Username is too long (maximum is 30 characters)"}},
		{"username dash", auth.Registration{Email: "b@x.io", Password: "password123", Username: "bo-b"}, []string{"Username may only contain letters, numbers and underscores"}},
		{"username unicode", auth.Registration{Email: "b@x.io", Password: "password123", Username: "bøb"}, []string{"Username may only contain letters, numbers and underscores"}},
		{"username sql", auth.Registration{Email: "b@x.io", Password: "password123", Username: "'; drop table users;--"}, []string{"Username may only contain letters, numbers and underscores"}},
		{"display name long", auth.Registration{Email: "b@x.io", Password: "password123", Username: "bob", DisplayName: ptr(long(51))}, []string{"Display name is too long (maximum is 50 characters)"}},
		{"display name control", auth.Registration{Email: "b@x.io", Password: "password123", Username: "bob", DisplayName: ptr("a\x00b")}, []string{"Display name must not contain control characters"}},
		{"email taken, any case", auth.Registration{Email: "TAKEN@example.com", Password: "password123", Username: "bob"}, []string{"Email has already been taken"}},
		{"username taken, any case", auth.Registration{Email: "b@x.io", Password: "password123", Username: "TAKEN"}, []string{"Username has already been taken"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Register(ctx, tc.reg)
			assert.Equal(t, tc.want, details(t, err))
		})
	}
	t.Run("128 characters is fine", func(t *testing.T) {
		_, err := f.svc.Register(ctx, auth.Registration{Email: "max@x.io", Password: long(128), Username: "maxpw"})
		require.NoError(t, err)
		_, err = f.svc.Login(ctx, "max@x.io", long(128))
		require.NoError(t, err)
	})
}

func ptr[T any](v T) *T { return &v }

func TestProductionBcryptCost(t *testing.T) {
	assert.Equal(t, 12, auth.DefaultConfig().BcryptCost)
	store := memory.NewUserStore()
	svc, err := auth.NewService(store, &fakeTokens{issued: map[string]auth.Claims{}}, memory.NewDenylist(), auth.DefaultConfig())
	require.NoError(t, err)
	s, err := svc.Register(context.Background(), auth.Registration{Email: "c@x.io", Password: "password123", Username: "cost"})
	require.NoError(t, err)
	cost, err := bcrypt.Cost([]byte(s.User.PasswordHash))
	require.NoError(t, err)
	assert.Equal(t, 12, cost)
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	reg := f.register(t, "alice")

	s, err := f.svc.Login(ctx, " ALICE@example.com", "password123")
	require.NoError(t, err)
	assert.Equal(t, reg.User.ID, s.User.ID)
	assert.NotEqual(t, reg.Token, s.Token)

	_, errWrong := f.svc.Login(ctx, "alice@example.com", "wrong-password")
	_, errUnknown := f.svc.Login(ctx, "nobody@example.com", "password123")
	for _, err := range []error{errWrong, errUnknown} {
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
		var ce *core.Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, auth.MsgInvalidCredentials, ce.Message)
	}
	_, err = f.svc.Login(ctx, "alice@example.com", strings.Repeat("x", 1000))
	assert.Equal(t, core.Unauthenticated, core.KindOf(err), "an overlong password is just wrong")
}

func TestLockout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, "alice")
	login := func(pw string) error {
		_, err := f.svc.Login(ctx, "alice@example.com", pw)
		return err
	}
	message := func(err error) string {
		var ce *core.Error
		require.ErrorAs(t, err, &ce)
		require.Equal(t, core.Unauthenticated, ce.Kind)
		return ce.Message
	}

	t.Run("success resets the count", func(t *testing.T) {
		for range 9 {
			assert.Equal(t, auth.MsgInvalidCredentials, message(login("wrong")))
		}
		require.NoError(t, login("password123"))
		for range 9 {
			assert.Equal(t, auth.MsgInvalidCredentials, message(login("wrong")))
		}
		require.NoError(t, login("password123"), "9 failures after a success do not lock")
	})

	t.Run("ten failures lock for an hour", func(t *testing.T) {
		for range 10 {
			assert.Equal(t, auth.MsgInvalidCredentials, message(login("wrong")))
		}
		assert.Equal(t, auth.MsgLocked, message(login("password123")), "locked even with the right password")
		assert.Equal(t, auth.MsgLocked, message(login("wrong")))
		f.clock.Advance(59 * time.Minute)
		assert.Equal(t, auth.MsgLocked, message(login("password123")))
		f.clock.Advance(2 * time.Minute)
		require.NoError(t, login("password123"), "the lock lapses after an hour")
		u, err := f.store.GetByEmail(ctx, "alice@example.com")
		require.NoError(t, err)
		assert.Zero(t, u.FailedAttempts)
		assert.Nil(t, u.LockedAt)
	})

	t.Run("concurrent failures are all counted", func(t *testing.T) {
		f.register(t, "bob")
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() { _, _ = f.svc.Login(ctx, "bob@example.com", "wrong") })
		}
		wg.Wait()
		_, err := f.svc.Login(ctx, "bob@example.com", "password123")
		assert.Equal(t, auth.MsgLocked, message(err))
	})
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := f.register(t, "alice")

	t.Run("logout revokes the token only", func(t *testing.T) {
		other, err := f.svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		require.NoError(t, f.svc.Logout(ctx, other.Claims))
		_, _, err = f.svc.Authenticate(ctx, other.Token)
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
		_, _, err = f.svc.Authenticate(ctx, s.Token)
		assert.NoError(t, err)
	})
	t.Run("empty token", func(t *testing.T) {
		_, _, err := f.svc.Authenticate(ctx, "")
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
	})
	t.Run("expired token", func(t *testing.T) {
		f.clock.Advance(24*time.Hour + time.Second)
		defer f.clock.Advance(-24*time.Hour - time.Second)
		_, _, err := f.svc.Authenticate(ctx, s.Token)
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
	})
	t.Run("denylist down is 503, not 401, for a token not cleared lately", func(t *testing.T) {
		fresh, err := f.svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		f.denylist.SetUnavailable(true)
		defer f.denylist.SetUnavailable(false)
		_, _, err = f.svc.Authenticate(ctx, fresh.Token)
		assert.Equal(t, core.Unavailable, core.KindOf(err))
	})
	t.Run("denylist down: a token cleared within the grace still works", func(t *testing.T) {
		sess, err := f.svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		_, _, err = f.svc.Authenticate(ctx, sess.Token)
		require.NoError(t, err)

		f.denylist.SetUnavailable(true)
		defer f.denylist.SetUnavailable(false)
		f.clock.Advance(59 * time.Second)
		u, _, err := f.svc.Authenticate(ctx, sess.Token)
		require.NoError(t, err, "cleared 59 s ago, grace 60 s")
		assert.Equal(t, sess.User.ID, u.ID)

		f.clock.Advance(time.Second)
		_, _, err = f.svc.Authenticate(ctx, sess.Token)
		assert.Equal(t, core.Unavailable, core.KindOf(err), "the grace is over")
	})
	t.Run("denylist down: a token revoked elsewhere is not trusted", func(t *testing.T) {
		sess, err := f.svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		_, _, err = f.svc.Authenticate(ctx, sess.Token)
		require.NoError(t, err)
		hearRevocation(t, f.svc, sess.Claims.ID) // another instance's logout

		f.denylist.SetUnavailable(true)
		defer f.denylist.SetUnavailable(false)
		_, _, err = f.svc.Authenticate(ctx, sess.Token)
		assert.Equal(t, core.Unavailable, core.KindOf(err))
	})
	t.Run("denylist down: no grace configured trusts nothing", func(t *testing.T) {
		dl := memory.NewDenylist()
		svc, err := auth.NewService(f.store, &fakeTokens{issued: map[string]auth.Claims{}}, dl, auth.Config{BcryptCost: bcrypt.MinCost, TokenTTL: time.Hour})
		require.NoError(t, err)
		sess, err := svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		_, _, err = svc.Authenticate(ctx, sess.Token)
		require.NoError(t, err)
		dl.SetUnavailable(true)
		_, _, err = svc.Authenticate(ctx, sess.Token)
		assert.Equal(t, core.Unavailable, core.KindOf(err))
	})
	t.Run("deleted user", func(t *testing.T) {
		store := &forgetfulStore{Store: f.store}
		svc, err := auth.NewService(store, &fakeTokens{issued: map[string]auth.Claims{}}, memory.NewDenylist(), auth.Config{BcryptCost: bcrypt.MinCost, TokenTTL: time.Hour})
		require.NoError(t, err)
		sess, err := svc.Login(ctx, "alice@example.com", "password123")
		require.NoError(t, err)
		store.gone = sess.User.ID
		_, _, err = svc.Authenticate(ctx, sess.Token)
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
	})
}

// forgetfulStore behaves as if the user with id gone had been deleted.
type forgetfulStore struct {
	users.Store
	gone int64
}

func (s *forgetfulStore) Get(ctx context.Context, id int64) (users.User, error) {
	if id == s.gone {
		return users.User{}, core.E(core.NotFound, "")
	}
	return s.Store.Get(ctx, id)
}
