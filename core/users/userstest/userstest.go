// Package userstest is the contract that every users.Store implementation
// passes: run RunStore from the implementation's tests.
package userstest

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// RunStore runs the contract against stores that newStore returns, one per
// subtest. The subtests run in parallel and create users with random names,
// so a store may be shared between them or hold other users already.
func RunStore(t *testing.T, newStore func(t *testing.T) users.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s users.Store)
	}{
		{"Create returns the stored user", testCreate},
		{"Create of a taken email or username is Conflict", testCreateConflict},
		{"Get of an unknown id is NotFound", testGetUnknown},
		{"GetByEmail ignores case", testGetByEmail},
		{"GetByEmail of an unknown email is NotFound", testGetByEmailUnknown},
		{"GetMany skips missing ids", testGetMany},
		{"Search matches username and display name ignoring case", testSearchCase},
		{"Search takes wildcards literally", testSearchLiteral},
		{"Search orders exact, then prefix, then other matches", testSearchOrder},
		{"Search without matches is empty", testSearchNone},
		{"Update stores what fn changed", testUpdate},
		{"Update stores fields fn cleared", testUpdateClear},
		{"Update ignores fields outside profile, lockout and last seen", testUpdateIgnores},
		{"Update with a failing fn stores nothing", testUpdateFnError},
		{"Update of an unknown id is NotFound", testUpdateUnknown},
		{"Seen stamps last_seen_at and nothing else", testSeen},
		{"Seen of an unknown id is NotFound", testSeenUnknown},
		{"Concurrent updates of one user all apply", testUpdateConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// unknownID is an id that no store hands out in a test run.
const unknownID int64 = 1 << 62

// token returns random lower-case letters that no other test's names
// contain, so that tests can share a store and search without interference.
func token(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// newUser describes a user whose email derives from its username.
func newUser(username string, displayName *string) users.NewUser {
	return users.NewUser{
		Email:        username + "@example.com",
		Username:     username,
		DisplayName:  displayName,
		PasswordHash: "$2a$04$" + strings.Repeat("x", 53),
		CreatedAt:    time.Now(),
	}
}

func create(t *testing.T, s users.Store, nu users.NewUser) users.User {
	t.Helper()
	u, err := s.Create(context.Background(), nu)
	require.NoError(t, err)
	return u
}

func usernames(us []users.User) []string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Username
	}
	return names
}

func assertUTC(t *testing.T, what string, tm *time.Time) {
	t.Helper()
	if tm != nil {
		assert.Equal(t, time.UTC, tm.Location(), "%s is not in UTC", what)
	}
}

func testCreate(t *testing.T, s users.Store) {
	ctx := context.Background()
	name := token(t)
	nu := newUser(name, ptr("Ann "+name))
	// Stores return UTC whatever zone they were given.
	nu.CreatedAt = time.Now().In(time.FixedZone("UTC+3", 3*3600))

	u := create(t, s, nu)

	assert.NotZero(t, u.ID)
	assert.Equal(t, nu.Email, u.Email)
	assert.Equal(t, nu.Username, u.Username)
	assert.Equal(t, nu.DisplayName, u.DisplayName)
	assert.Equal(t, nu.PasswordHash, u.PasswordHash)
	assert.Nil(t, u.AvatarURL)
	assert.Nil(t, u.LastSeenAt)
	assert.Nil(t, u.LockedAt)
	assert.Zero(t, u.FailedAttempts)
	assert.WithinDuration(t, nu.CreatedAt, u.CreatedAt, time.Millisecond)
	assertUTC(t, "CreatedAt", &u.CreatedAt)
	assertUTC(t, "UpdatedAt", &u.UpdatedAt)

	got, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, u, got)

	other := create(t, s, newUser(name+"_2", nil))
	assert.NotEqual(t, u.ID, other.ID)
}

func testCreateConflict(t *testing.T, s users.Store) {
	ctx := context.Background()
	tests := []struct {
		name        string
		second      func(first users.NewUser, fresh string) users.NewUser
		wantDetails []string
	}{
		{
			name: "email",
			second: func(first users.NewUser, fresh string) users.NewUser {
				return users.NewUser{Email: first.Email, Username: fresh, PasswordHash: "x", CreatedAt: time.Now()}
			},
			wantDetails: []string{"Email has already been taken"},
		},
		{
			name: "email in other case",
			second: func(first users.NewUser, fresh string) users.NewUser {
				return users.NewUser{Email: strings.ToUpper(first.Email), Username: fresh, PasswordHash: "x", CreatedAt: time.Now()}
			},
			wantDetails: []string{"Email has already been taken"},
		},
		{
			name: "username in other case",
			second: func(first users.NewUser, fresh string) users.NewUser {
				return users.NewUser{Email: fresh + "@example.com", Username: strings.ToUpper(first.Username), PasswordHash: "x", CreatedAt: time.Now()}
			},
			wantDetails: []string{"Username has already been taken"},
		},
		{
			name: "both",
			second: func(first users.NewUser, _ string) users.NewUser {
				return users.NewUser{Email: first.Email, Username: first.Username, PasswordHash: "x", CreatedAt: time.Now()}
			},
			wantDetails: []string{"Email has already been taken", "Username has already been taken"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := newUser(token(t), nil)
			create(t, s, first)
			fresh := token(t)
			second := tc.second(first, fresh)

			_, err := s.Create(ctx, second)

			require.Error(t, err)
			var ce *core.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, core.Conflict, ce.Kind)
			assert.ElementsMatch(t, tc.wantDetails, ce.Details)
			if second.Email != first.Email && !strings.EqualFold(second.Email, first.Email) {
				_, err := s.GetByEmail(ctx, second.Email)
				assert.True(t, core.Is(err, core.NotFound), "the rejected user was stored: %v", err)
			}
		})
	}
}

func testGetUnknown(t *testing.T, s users.Store) {
	_, err := s.Get(context.Background(), unknownID)
	assert.True(t, core.Is(err, core.NotFound), "got %v", err)
}

func testGetByEmail(t *testing.T, s users.Store) {
	u := create(t, s, newUser(token(t), nil))

	got, err := s.GetByEmail(context.Background(), strings.ToUpper(u.Email))

	require.NoError(t, err)
	assert.Equal(t, u, got)
}

func testGetByEmailUnknown(t *testing.T, s users.Store) {
	_, err := s.GetByEmail(context.Background(), token(t)+"@example.com")
	assert.True(t, core.Is(err, core.NotFound), "got %v", err)
}

func testGetMany(t *testing.T, s users.Store) {
	ctx := context.Background()
	a := create(t, s, newUser(token(t), nil))
	b := create(t, s, newUser(token(t), nil))
	create(t, s, newUser(token(t), nil))

	got, err := s.GetMany(ctx, []int64{b.ID, unknownID, a.ID, b.ID})

	require.NoError(t, err)
	assert.ElementsMatch(t, []users.User{a, b}, got)

	none, err := s.GetMany(ctx, nil)
	require.NoError(t, err)
	assert.NotNil(t, none, "an empty result must render as [], not null")
	assert.Empty(t, none)
}

func testSearchCase(t *testing.T, s users.Store) {
	tok := token(t)
	byName := create(t, s, newUser(tok+"cat", nil))
	byDisplay := create(t, s, newUser(token(t), ptr("Big Dog "+tok)))
	tests := []struct {
		name string
		term string
		want []string
	}{
		{"username", strings.ToUpper(tok + "CAT"), []string{byName.Username}},
		{"display name", "dog " + strings.ToUpper(tok), []string{byDisplay.Username}},
		{"display name prefix", "BIG dog " + tok, []string{byDisplay.Username}},
		{"both", strings.ToUpper(tok[:4]) + tok[4:], []string{byName.Username, byDisplay.Username}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(context.Background(), tc.term, 20)
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, usernames(got))
		})
	}
}

func testSearchLiteral(t *testing.T, s users.Store) {
	tok := token(t)
	underscore := create(t, s, newUser(tok+"a_b", nil))
	create(t, s, newUser(tok+"axb", nil))
	percent := create(t, s, newUser(tok+"p1", ptr(tok+" 100% sure")))
	create(t, s, newUser(tok+"p2", ptr(tok+" 100 percent sure")))
	backslash := create(t, s, newUser(tok+"b1", ptr(tok+` back\slash`)))
	create(t, s, newUser(tok+"b2", ptr(tok+" backslash")))
	tests := []struct {
		name string
		term string
		want []string
	}{
		{"underscore", tok + "a_b", []string{underscore.Username}},
		{"underscore matching nothing", tok + "_", nil},
		{"percent", tok + " 100%", []string{percent.Username}},
		{"percent matching nothing", tok + "%", nil},
		{"backslash", tok + ` back\s`, []string{backslash.Username}},
		{"trailing backslash", tok + ` back\`, []string{backslash.Username}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(context.Background(), tc.term, 20)
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, usernames(got))
		})
	}
}

func testSearchOrder(t *testing.T, s users.Store) {
	tok := token(t)
	var exact, prefix, contains []string
	add := func(group *[]string, username string, displayName *string) {
		*group = append(*group, create(t, s, newUser(username, displayName)).Username)
	}
	add(&contains, "zz"+tok, nil)
	add(&prefix, tok+"zz", nil)
	add(&contains, token(t), ptr("Mr "+tok))
	add(&exact, tok, nil)
	add(&prefix, token(t), ptr(strings.ToUpper(tok)+" Jones"))
	add(&contains, "aa"+tok, nil)
	add(&contains, "mm"+tok+"_mm", ptr("Q"))
	slices.Sort(prefix)
	slices.Sort(contains)
	all := slices.Concat(exact, prefix, contains)

	tests := []struct {
		name  string
		term  string
		limit int
		want  []string
	}{
		{"all", tok, 100, all},
		{"upper-case term", strings.ToUpper(tok), 100, all},
		{"limit 1", tok, 1, all[:1]},
		{"limit 4", tok, 4, all[:4]},
		{"limit 0", tok, 0, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(context.Background(), tc.term, tc.limit)
			require.NoError(t, err)
			assert.Equal(t, tc.want, usernames(got))
		})
	}
}

func testSearchNone(t *testing.T, s users.Store) {
	got, err := s.Search(context.Background(), token(t), 20)
	require.NoError(t, err)
	assert.NotNil(t, got, "an empty result must render as [], not null")
	assert.Empty(t, got)
}

func testUpdate(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := create(t, s, newUser(token(t), nil))
	zone := time.FixedZone("UTC-5", -5*3600)
	seen := time.Now().In(zone)
	locked := seen.Add(-time.Minute)

	got, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.DisplayName = ptr("New Name")
		u.AvatarURL = ptr("https://example.com/a.png")
		u.LastSeenAt = &seen
		u.FailedAttempts = 3
		u.LockedAt = &locked
		return nil
	})

	require.NoError(t, err)
	assert.Equal(t, ptr("New Name"), got.DisplayName)
	assert.Equal(t, ptr("https://example.com/a.png"), got.AvatarURL)
	require.NotNil(t, got.LastSeenAt)
	assert.WithinDuration(t, seen, *got.LastSeenAt, time.Millisecond)
	require.NotNil(t, got.LockedAt)
	assert.WithinDuration(t, locked, *got.LockedAt, time.Millisecond)
	assert.Equal(t, 3, got.FailedAttempts)
	assertUTC(t, "LastSeenAt", got.LastSeenAt)
	assertUTC(t, "LockedAt", got.LockedAt)
	assertUTC(t, "UpdatedAt", &got.UpdatedAt)

	stored, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, got, stored)
}

func testUpdateClear(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := create(t, s, newUser(token(t), ptr("Name")))
	now := time.Now()
	_, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.AvatarURL = ptr("https://example.com/a.png")
		u.LockedAt = &now
		return nil
	})
	require.NoError(t, err)

	got, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.DisplayName = nil
		u.AvatarURL = nil
		u.LockedAt = nil
		return nil
	})

	require.NoError(t, err)
	assert.Nil(t, got.DisplayName)
	assert.Nil(t, got.AvatarURL)
	assert.Nil(t, got.LockedAt)
	stored, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, got, stored)
}

func testUpdateIgnores(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := create(t, s, newUser(token(t), nil))

	got, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.ID = unknownID
		u.Email = "changed@example.com"
		u.Username = "changed"
		u.PasswordHash = "changed"
		u.CreatedAt = time.Unix(0, 0)
		return nil
	})

	require.NoError(t, err)
	stored, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	for _, v := range []users.User{got, stored} {
		assert.Equal(t, u.ID, v.ID)
		assert.Equal(t, u.Email, v.Email)
		assert.Equal(t, u.Username, v.Username)
		assert.Equal(t, u.PasswordHash, v.PasswordHash)
		assert.Equal(t, u.CreatedAt, v.CreatedAt)
	}
}

func testUpdateFnError(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := create(t, s, newUser(token(t), ptr("Before")))
	errRefused := errors.New("refused")

	_, err := s.Update(ctx, u.ID, func(u *users.User) error {
		u.DisplayName = ptr("After")
		u.FailedAttempts = 7
		return errRefused
	})

	assert.Same(t, errRefused, err, "Update must return fn's error unchanged")
	stored, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, u, stored)
}

func testUpdateUnknown(t *testing.T, s users.Store) {
	called := false
	_, err := s.Update(context.Background(), unknownID, func(*users.User) error {
		called = true
		return nil
	})
	assert.True(t, core.Is(err, core.NotFound), "got %v", err)
	assert.False(t, called, "fn was called for a missing user")
}

func testUpdateConcurrent(t *testing.T, s users.Store) {
	const n = 20
	ctx := context.Background()
	u := create(t, s, newUser(token(t), nil))

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.Update(ctx, u.ID, func(u *users.User) error {
				u.FailedAttempts++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)

	for err := range errs {
		require.NoError(t, err)
	}
	got, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, n, got.FailedAttempts)
}

func testSeen(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := create(t, s, newUser(token(t), nil))
	seen := time.Now().In(time.FixedZone("UTC-5", -5*3600))

	got, err := s.Seen(ctx, u.ID, seen)

	require.NoError(t, err)
	require.NotNil(t, got.LastSeenAt)
	assert.WithinDuration(t, seen, *got.LastSeenAt, time.Millisecond)
	assertUTC(t, "LastSeenAt", got.LastSeenAt)
	assert.Equal(t, u.Username, got.Username)
	assert.Equal(t, u.DisplayName, got.DisplayName)
	stored, err := s.Get(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, got, stored)
	u.LastSeenAt = got.LastSeenAt
	assert.Equal(t, u, stored, "Seen changed more than last_seen_at")
}

func testSeenUnknown(t *testing.T, s users.Store) {
	_, err := s.Seen(context.Background(), unknownID, time.Now())
	assert.True(t, core.Is(err, core.NotFound), "got %v", err)
}
