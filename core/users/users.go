// Package users holds user accounts' profile rules: who a user is, how they
// are found, and what they may change about themselves.
package users

import (
	"context"
	"time"
)

// User is an account. PasswordHash and the lockout fields never leave the
// server; ports render the public or private view.
type User struct {
	ID           int64
	Email        string
	Username     string
	DisplayName  *string
	AvatarURL    *string
	LastSeenAt   *time.Time
	PasswordHash string
	// FailedAttempts counts consecutive failed logins (Devise lockable).
	FailedAttempts int
	// LockedAt is set when FailedAttempts reached the limit.
	LockedAt  *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Name is what other people see: the display name, or the username when blank.
func (u *User) Name() string {
	if u.DisplayName != nil && *u.DisplayName != "" {
		return *u.DisplayName
	}
	return u.Username
}

// NewUser is what registration stores.
type NewUser struct {
	Email        string
	Username     string
	DisplayName  *string
	PasswordHash string
	CreatedAt    time.Time
}

// Profile is the part of a user that the user may change. A nil field is
// left as it is; ClearX sets it to null.
type Profile struct {
	DisplayName      *string
	AvatarURL        *string
	ClearDisplayName bool
	ClearAvatarURL   bool
}

// Store keeps users. Implementations: postgres.UserStore, memory.UserStore;
// both pass userstest.RunStore.
type Store interface {
	// Create stores a new user and returns it with its id.
	// Conflict when the email or the username is taken (case-insensitively);
	// the error's Details name which.
	Create(ctx context.Context, u NewUser) (User, error)
	// Get returns the user with the id. NotFound when there is none.
	Get(ctx context.Context, id int64) (User, error)
	// GetMany returns the users with these ids that exist, in no particular order.
	GetMany(ctx context.Context, ids []int64) ([]User, error)
	// GetByEmail finds a user by email, case-insensitively. NotFound when none.
	GetByEmail(ctx context.Context, email string) (User, error)
	// Search returns at most limit users whose username or display name
	// contains term case-insensitively, taken literally (no wildcards):
	// exact username matches first, then prefix matches, then the rest,
	// each group by username.
	Search(ctx context.Context, term string, limit int) ([]User, error)
	// Update loads the user, calls fn with it, and stores what fn left in
	// the profile, lockout and last-seen fields, atomically with respect to
	// other Updates of the same user. If fn returns an error nothing is
	// stored and that error is returned. NotFound when there is no such user.
	Update(ctx context.Context, id int64, fn func(*User) error) (User, error)
	// Seen sets the user's last_seen_at to at and returns the user. It is
	// a stamp, not a record: a crash may lose the latest one, in exchange
	// for no disk flush per user coming online. NotFound when there is no
	// such user.
	Seen(ctx context.Context, id int64, at time.Time) (User, error)
}
