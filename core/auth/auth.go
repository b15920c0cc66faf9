// Package auth registers users, checks their passwords, and issues, verifies
// and revokes their tokens.
package auth

import (
	"context"
	"time"

	"github.com/chatterly/chatterly/core/users"
)

// Claims are what a token carries.
type Claims struct {
	UserID    int64     // "sub", as a decimal string on the wire
	ID        string    // "jti", a random UUID; the denylist key
	IssuedAt  time.Time // "iat"
	ExpiresAt time.Time // "exp"
}

// Tokens signs and verifies tokens. Implementation: token.Signer (JWT HS256).
type Tokens interface {
	// Sign returns a signed token carrying c.
	Sign(c Claims) (string, error)
	// Verify checks the token's algorithm, signature and claims at time now
	// and returns them. Unauthenticated for any defect: another algorithm,
	// a bad signature, a missing or passed exp, a missing jti or sub.
	Verify(token string, now time.Time) (Claims, error)
}

// Denylist remembers revoked token ids until the tokens expire.
// Implementations: redis.Denylist, memory.Denylist; both pass authtest.RunDenylist.
// Both methods return Unavailable when the store cannot be reached.
type Denylist interface {
	// Revoke denies jti until the time until; after that it may be forgotten.
	Revoke(ctx context.Context, jti string, until time.Time) error
	// Revoked reports whether jti is denied.
	Revoked(ctx context.Context, jti string) (bool, error)
}

// Accounts is the part of users.Store that auth needs.
type Accounts interface {
	Create(ctx context.Context, u users.NewUser) (users.User, error)
	Get(ctx context.Context, id int64) (users.User, error)
	GetByEmail(ctx context.Context, email string) (users.User, error)
	Update(ctx context.Context, id int64, fn func(*users.User) error) (users.User, error)
}
