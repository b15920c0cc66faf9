package postgres

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/gen/db"
)

// Details of the Conflict that Create returns, worded as Devise words them.
const (
	msgEmailTaken    = "Email has already been taken"
	msgUsernameTaken = "Username has already been taken"
)

// UserStore keeps users in the users table. Besides the kinds each method
// names, every method returns Unavailable when the database cannot be
// reached.
type UserStore struct {
	db *DB
}

var _ users.Store = (*UserStore)(nil)

// NewUserStore returns a UserStore over db.
func NewUserStore(db *DB) *UserStore {
	return &UserStore{db: db}
}

// Create stores a new user with its email and username lower-cased.
// Conflict when either is taken; the Details say which, both when both are.
func (s *UserStore) Create(ctx context.Context, u users.NewUser) (users.User, error) {
	q := db.New(s.db.primary)
	row, err := q.CreateUser(ctx, db.CreateUserParams{
		Email:             u.Email,
		EncryptedPassword: u.PasswordHash,
		Username:          u.Username,
		DisplayName:       u.DisplayName,
		CreatedAt:         u.CreatedAt,
	})
	if err == nil {
		return userFromRow(row), nil
	}
	err = translate(err)
	if !core.Is(err, core.Conflict) {
		return users.User{}, err
	}
	// The violated index names only the first duplicate found; asking for
	// both lets the client show every problem at once.
	taken, terr := q.UsersTaken(ctx, db.UsersTakenParams{Email: u.Email, Username: u.Username})
	if terr != nil {
		return users.User{}, translate(terr)
	}
	conflict := &core.Error{Kind: core.Conflict, Message: "Already taken", Err: err}
	if taken.EmailTaken {
		conflict.Details = append(conflict.Details, msgEmailTaken)
	}
	if taken.UsernameTaken {
		conflict.Details = append(conflict.Details, msgUsernameTaken)
	}
	if len(conflict.Details) == 0 {
		// The other row is gone already; name what the index said.
		conflict.Details = []string{detailForConstraint(err)}
	}
	return users.User{}, conflict
}

func detailForConstraint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "index_users_on_username" {
		return msgUsernameTaken
	}
	return msgEmailTaken
}

// Get returns the user with the id. NotFound when there is none.
func (s *UserStore) Get(ctx context.Context, id int64) (users.User, error) {
	row, err := db.New(s.db.primary).GetUser(ctx, id)
	if err != nil {
		return users.User{}, translate(err)
	}
	return userFromRow(row), nil
}

// GetMany returns the users with these ids that exist.
func (s *UserStore) GetMany(ctx context.Context, ids []int64) ([]users.User, error) {
	rows, err := db.New(s.db.primary).GetUsers(ctx, ids)
	if err != nil {
		return nil, translate(err)
	}
	return usersFromRows(rows), nil
}

// GetByEmail finds a user by email, case-insensitively. NotFound when none.
func (s *UserStore) GetByEmail(ctx context.Context, email string) (users.User, error) {
	row, err := db.New(s.db.primary).GetUserByEmail(ctx, email)
	if err != nil {
		return users.User{}, translate(err)
	}
	return userFromRow(row), nil
}

// likeEscaper makes a search term match itself only, under ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Search returns at most limit users whose username or display name
// contains term. It reads from the replica: results a moment stale are fine.
func (s *UserStore) Search(ctx context.Context, term string, limit int) ([]users.User, error) {
	if limit <= 0 {
		return []users.User{}, nil
	}
	rows, err := db.New(s.db.replica).SearchUsers(ctx, db.SearchUsersParams{
		Pattern:    likeEscaper.Replace(term),
		Term:       term,
		MaxResults: int32(min(limit, math.MaxInt32)),
	})
	if err != nil {
		return nil, translate(err)
	}
	return usersFromRows(rows), nil
}

// Update locks the user's row for the length of a transaction, so that
// concurrent Updates of one user apply one after the other.
func (s *UserStore) Update(ctx context.Context, id int64, fn func(*users.User) error) (users.User, error) {
	tx, err := s.db.primary.Begin(ctx)
	if err != nil {
		return users.User{}, translate(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	row, err := q.LockUser(ctx, id)
	if err != nil {
		return users.User{}, translate(err)
	}
	u := userFromRow(row)
	if err := fn(&u); err != nil {
		return users.User{}, err
	}
	row, err = q.UpdateUser(ctx, db.UpdateUserParams{
		ID:             id,
		DisplayName:    u.DisplayName,
		AvatarUrl:      u.AvatarURL,
		LastSeenAt:     u.LastSeenAt,
		FailedAttempts: int32(min(max(u.FailedAttempts, 0), math.MaxInt32)), // the column is int4
		LockedAt:       u.LockedAt,
	})
	if err != nil {
		return users.User{}, translate(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return users.User{}, translate(err)
	}
	return userFromRow(row), nil
}

func userFromRow(r db.User) users.User {
	return users.User{
		ID:             r.ID,
		Email:          r.Email,
		Username:       r.Username,
		DisplayName:    r.DisplayName,
		AvatarURL:      r.AvatarUrl,
		LastSeenAt:     utcPtr(r.LastSeenAt),
		PasswordHash:   r.EncryptedPassword,
		FailedAttempts: int(r.FailedAttempts),
		LockedAt:       utcPtr(r.LockedAt),
		CreatedAt:      r.CreatedAt.UTC(),
		UpdatedAt:      r.UpdatedAt.UTC(),
	}
}

// usersFromRows never returns nil, so that an empty result renders as [].
func usersFromRows(rows []db.User) []users.User {
	out := make([]users.User, len(rows))
	for i, r := range rows {
		out[i] = userFromRow(r)
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Seen stamps the user's last_seen_at, committing asynchronously.
func (s *UserStore) Seen(ctx context.Context, id int64, at time.Time) (users.User, error) {
	at = at.UTC()
	row, err := db.New(s.db.primary).SeenUser(ctx, db.SeenUserParams{ID: id, LastSeenAt: &at})
	if err != nil {
		return users.User{}, translate(err)
	}
	return userFromRow(row), nil
}
