package users_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

func newService(t *testing.T) (*users.Service, *memory.UserStore, *memory.Presence) {
	t.Helper()
	store, pres := memory.NewUserStore(), memory.NewPresence()
	return users.NewService(store, pres), store, pres
}

func create(t *testing.T, store users.Store, username string) users.User {
	t.Helper()
	u, err := store.Create(context.Background(), users.NewUser{Email: username + "@x.io", Username: username, PasswordHash: "h", CreatedAt: time.Now()})
	require.NoError(t, err)
	return u
}

func TestSearch(t *testing.T) {
	ctx := context.Background()
	svc, store, _ := newService(t)
	create(t, store, "alice")
	create(t, store, "malice")

	got, err := svc.Search(ctx, "   ")
	require.NoError(t, err)
	assert.Empty(t, got, "an empty search matches nobody")
	assert.NotNil(t, got, "and renders as [] not null")

	got, err = svc.Search(ctx, " ALI ")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "alice", got[0].Username, "prefix match first")

	_, err = svc.Search(ctx, strings.Repeat("a", 101))
	assert.Equal(t, core.Invalid, core.KindOf(err))

	for i := range 30 {
		create(t, store, "bulk"+string(rune('a'+i%26))+strings.Repeat("x", i/26+1))
	}
	got, err = svc.Search(ctx, "bulk")
	require.NoError(t, err)
	assert.Len(t, got, users.SearchLimit)
}

func TestUpdateProfile(t *testing.T) {
	ctx := context.Background()
	svc, store, _ := newService(t)
	alice := create(t, store, "alice")
	bob := create(t, store, "bob")

	_, err := svc.UpdateProfile(ctx, bob.ID, alice.ID, users.Profile{DisplayName: ptr("Mallory")})
	assert.Equal(t, core.Forbidden, core.KindOf(err))

	u, err := svc.UpdateProfile(ctx, alice.ID, alice.ID, users.Profile{DisplayName: ptr("Alice"), AvatarURL: ptr("https://cdn.example.com/a.png")})
	require.NoError(t, err)
	assert.Equal(t, "Alice", *u.DisplayName)
	assert.Equal(t, "https://cdn.example.com/a.png", *u.AvatarURL)

	u, err = svc.UpdateProfile(ctx, alice.ID, alice.ID, users.Profile{ClearAvatarURL: true})
	require.NoError(t, err)
	assert.Nil(t, u.AvatarURL)
	assert.Equal(t, "Alice", *u.DisplayName, "fields not given stay")

	bad := []struct {
		name string
		p    users.Profile
		want string
	}{
		{"javascript url", users.Profile{AvatarURL: ptr("javascript:alert(1)")}, "Avatar url must be an http or https URL"},
		{"data url", users.Profile{AvatarURL: ptr("data:image/png;base64,AAAA")}, "Avatar url must be an http or https URL"},
		{"relative url", users.Profile{AvatarURL: ptr("/a.png")}, "Avatar url must be an http or https URL"},
		{"huge url", users.Profile{AvatarURL: ptr("https://x.io/" + strings.Repeat("a", 2048))}, "Avatar url is too long (maximum is 2048 characters)"},
		{"long name", users.Profile{DisplayName: ptr(strings.Repeat("é", 51))}, "Display name is too long (maximum is 50 characters)"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.UpdateProfile(ctx, alice.ID, alice.ID, tc.p)
			var ce *core.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, core.Invalid, ce.Kind)
			assert.Equal(t, []string{tc.want}, ce.Details)
		})
	}
	got, err := store.Get(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, "Alice", *got.DisplayName, "rejected updates change nothing")
	assert.Equal(t, "Alice", got.Name())
	assert.Equal(t, "bob", bob.Name(), "the username stands in for a blank display name")
}

func TestOnline(t *testing.T) {
	ctx := context.Background()
	svc, store, pres := newService(t)
	alice, bob := create(t, store, "alice"), create(t, store, "bob")
	_, err := pres.Touch(ctx, alice.ID, "conn-1", time.Minute)
	require.NoError(t, err)
	m, err := svc.Online(ctx, alice, bob)
	require.NoError(t, err)
	assert.True(t, m[alice.ID])
	assert.False(t, m[bob.ID])
	m, err = svc.Online(ctx)
	require.NoError(t, err)
	assert.Empty(t, m)
}

func ptr[T any](v T) *T { return &v }
