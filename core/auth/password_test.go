package auth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/users"
)

// Devise accepted passwords of 8 to 128 characters and bcrypt hashed their
// first 72 bytes; accounts carried over from it must keep signing in.
func TestLongPasswords(t *testing.T) {
	ctx := context.Background()
	pw100 := strings.Repeat("p", 90) + "0123456789"
	// The 72nd byte is the first half of an "é".
	pw128 := "a" + strings.Repeat("é", 127)

	tests := []struct {
		name string
		// account makes the account and returns its email.
		account  func(t *testing.T, f *fixture) string
		login    string
		wantUser bool
	}{
		{
			name:     "registered with 100 characters",
			account:  registerWith(pw100),
			login:    pw100,
			wantUser: true,
		},
		{
			name:     "registered with 128 two-byte characters",
			account:  registerWith(pw128),
			login:    pw128,
			wantUser: true,
		},
		{
			name: "hash by Devise: bcrypt of the first 72 bytes",
			account: func(t *testing.T, f *fixture) string {
				t.Helper()
				hash, err := bcrypt.GenerateFromPassword([]byte(pw100)[:72], bcrypt.MinCost)
				require.NoError(t, err)
				u, err := f.store.Create(ctx, users.NewUser{Email: "devise@x.io", Username: "devise", PasswordHash: string(hash), CreatedAt: f.clock.Now()})
				require.NoError(t, err)
				return u.Email
			},
			login:    pw100,
			wantUser: true,
		},
		{
			name:     "bytes past 72 are not compared, as bcrypt never did",
			account:  registerWith(pw128),
			login:    pw128[:len(pw128)-2] + "e",
			wantUser: true,
		},
		{
			name:    "a change within the first 72 bytes is a wrong password",
			account: registerWith(pw100),
			login:   "P" + pw100[1:],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			email := tt.account(t, f)
			s, err := f.svc.Login(ctx, email, tt.login)
			if !tt.wantUser {
				assert.Equal(t, core.Unauthenticated, core.KindOf(err), "error: %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, email, s.User.Email)
		})
	}
}

func registerWith(password string) func(t *testing.T, f *fixture) string {
	return func(t *testing.T, f *fixture) string {
		t.Helper()
		s, err := f.svc.Register(context.Background(), auth.Registration{Email: "long@x.io", Password: password, Username: "long"})
		require.NoError(t, err)
		return s.User.Email
	}
}

// No account has a password over 128 characters, so a longer one is
// refused before the account is looked up: no bcrypt over it, no failed
// attempt counted against the account, and no 500 however long it is.
func TestLoginOverMaxPassword(t *testing.T) {
	ctx := context.Background()
	// Its first 72 bytes are the account's password's.
	pw := strings.Repeat("p", 100)
	for _, tt := range []struct{ name, password string }{
		{"129 characters", pw + strings.Repeat("q", 29)},
		{"129 two-byte characters", strings.Repeat("é", 129)},
		{"a megabyte", strings.Repeat("p", 1<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			registerWith(pw)(t, f)
			_, err := f.svc.Login(ctx, "long@x.io", tt.password)
			var ce *core.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, core.Unauthenticated, ce.Kind)
			assert.Equal(t, auth.MsgInvalidCredentials, ce.Message)
			u, err := f.store.GetByEmail(ctx, "long@x.io")
			require.NoError(t, err)
			assert.Zero(t, u.FailedAttempts, "the account was not consulted")
		})
	}
}
