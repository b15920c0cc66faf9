package memory

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// UserStore keeps users in maps. Its searches, conflicts and timestamps
// behave as postgres.UserStore's do; both pass userstest.RunStore.
type UserStore struct {
	mu         sync.Mutex
	nextID     int64
	byID       map[int64]*users.User
	byEmail    map[string]int64
	byUsername map[string]int64
	// rowLocks serialize Updates of one user while fn runs, as a row lock
	// does, without holding mu: fn may read the store.
	rowLocks map[int64]*sync.Mutex
}

var _ users.Store = (*UserStore)(nil)

// NewUserStore returns an empty UserStore.
func NewUserStore() *UserStore {
	return &UserStore{
		byID:       make(map[int64]*users.User),
		byEmail:    make(map[string]int64),
		byUsername: make(map[string]int64),
		rowLocks:   make(map[int64]*sync.Mutex),
	}
}

// Create stores a new user with its email and username lower-cased.
// Conflict when either is taken; the Details say which, both when both are.
func (s *UserStore) Create(_ context.Context, nu users.NewUser) (users.User, error) {
	email, username := strings.ToLower(nu.Email), strings.ToLower(nu.Username)
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken []string
	if _, ok := s.byEmail[email]; ok {
		taken = append(taken, "Email has already been taken")
	}
	if _, ok := s.byUsername[username]; ok {
		taken = append(taken, "Username has already been taken")
	}
	if len(taken) > 0 {
		return users.User{}, &core.Error{Kind: core.Conflict, Message: "Already taken", Details: taken}
	}
	s.nextID++
	created := nu.CreatedAt.UTC()
	u := &users.User{
		ID:           s.nextID,
		Email:        email,
		Username:     username,
		DisplayName:  cloneUserField(nu.DisplayName),
		PasswordHash: nu.PasswordHash,
		CreatedAt:    created,
		UpdatedAt:    created,
	}
	s.byID[u.ID] = u
	s.byEmail[email] = u.ID
	s.byUsername[username] = u.ID
	s.rowLocks[u.ID] = new(sync.Mutex)
	return cloneUser(u), nil
}

// Get returns the user with the id. NotFound when there is none.
func (s *UserStore) Get(_ context.Context, id int64) (users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	if !ok {
		return users.User{}, core.E(core.NotFound, "Not found")
	}
	return cloneUser(u), nil
}

// GetMany returns the users with these ids that exist, each once.
func (s *UserStore) GetMany(_ context.Context, ids []int64) ([]users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []users.User{}
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if u, ok := s.byID[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, cloneUser(u))
		}
	}
	return out, nil
}

// GetByEmail finds a user by email, case-insensitively. NotFound when none.
func (s *UserStore) GetByEmail(_ context.Context, email string) (users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byEmail[strings.ToLower(email)]
	if !ok {
		return users.User{}, core.E(core.NotFound, "Not found")
	}
	return cloneUser(s.byID[id]), nil
}

// Search returns at most limit users whose username or display name
// contains term, ignoring case: exact username matches first, then prefix
// matches of either, then the rest, each group by username (bytewise).
func (s *UserStore) Search(_ context.Context, term string, limit int) ([]users.User, error) {
	needle := strings.ToLower(term)
	type match struct {
		rank int
		user *users.User
	}
	s.mu.Lock()
	var matches []match
	for _, u := range s.byID {
		display := ""
		if u.DisplayName != nil {
			display = strings.ToLower(*u.DisplayName)
		}
		switch {
		case u.Username == needle:
			matches = append(matches, match{0, u})
		case strings.HasPrefix(u.Username, needle) || strings.HasPrefix(display, needle):
			matches = append(matches, match{1, u})
		case strings.Contains(u.Username, needle) || strings.Contains(display, needle):
			matches = append(matches, match{2, u})
		}
	}
	slices.SortFunc(matches, func(a, b match) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.user.Username, b.user.Username))
	})
	out := make([]users.User, 0, min(len(matches), max(limit, 0)))
	for _, m := range matches[:min(len(matches), max(limit, 0))] {
		out = append(out, cloneUser(m.user))
	}
	s.mu.Unlock()
	return out, nil
}

// Update calls fn on a copy of the user and keeps fn's changes to the
// profile, lockout and last-seen fields. Updates of one user take turns.
func (s *UserStore) Update(_ context.Context, id int64, fn func(*users.User) error) (users.User, error) {
	s.mu.Lock()
	rowLock, ok := s.rowLocks[id]
	s.mu.Unlock()
	if !ok {
		return users.User{}, core.E(core.NotFound, "Not found")
	}
	rowLock.Lock()
	defer rowLock.Unlock()

	s.mu.Lock()
	u := cloneUser(s.byID[id])
	s.mu.Unlock()
	if err := fn(&u); err != nil {
		return users.User{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.byID[id]
	stored.DisplayName = cloneUserField(u.DisplayName)
	stored.AvatarURL = cloneUserField(u.AvatarURL)
	stored.LastSeenAt = utcUserTime(u.LastSeenAt)
	stored.FailedAttempts = u.FailedAttempts
	stored.LockedAt = utcUserTime(u.LockedAt)
	stored.UpdatedAt = time.Now().UTC()
	return cloneUser(stored), nil
}

// cloneUser copies u deeply, so that callers never share pointers with
// what the store holds.
func cloneUser(u *users.User) users.User {
	c := *u
	c.DisplayName = cloneUserField(u.DisplayName)
	c.AvatarURL = cloneUserField(u.AvatarURL)
	c.LastSeenAt = cloneUserField(u.LastSeenAt)
	c.LockedAt = cloneUserField(u.LockedAt)
	return c
}

func cloneUserField[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func utcUserTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Seen stamps the user's last_seen_at.
func (s *UserStore) Seen(_ context.Context, id int64, at time.Time) (users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.byID[id]
	if !ok {
		return users.User{}, core.E(core.NotFound, "Not found")
	}
	stored.LastSeenAt = utcUserTime(&at)
	return cloneUser(stored), nil
}
