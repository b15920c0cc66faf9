package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// Rules of registration and login.
const (
	// MinPassword and MaxPassword are Devise's bounds, in characters as
	// Rails counts them (not bytes).
	MinPassword = 8
	MaxPassword = 128
	MinUsername = 3
	MaxUsername = 30
	MaxEmail    = 254
)

// Messages clients see. Unknown email and wrong password share one, so the
// response does not tell whether an account exists.
const (
	MsgInvalidCredentials = "Invalid Email or password."
	MsgLocked             = "Your account is locked."
	MsgSignIn             = "You need to sign in or sign up before continuing."
	MsgRevoked            = "Your session has ended. Please sign in again."
)

var (
	emailPattern    = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)
	usernamePattern = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// Config holds the auth rules that deployments and tests tune.
type Config struct {
	BcryptCost        int           // 12 in production (Devise's default)
	TokenTTL          time.Duration // 24h
	MaxFailedAttempts int           // 10
	LockFor           time.Duration // 1h
	Now               func() time.Time
	// Revocations, when set, is told of every logout on RevocationStream,
	// which every instance hears (WatchRevocations), so that the token's
	// open WebSocket connections close everywhere.
	Revocations Publisher
	// OutageGrace is how long a token the denylist has cleared stays
	// trusted while the denylist cannot be checked (a Redis restart), so
	// that signed-in clients keep working through it. A token revoked
	// meanwhile cannot be (logout needs the denylist), and revocations
	// announced on RevocationStream end the trust at once. Tokens
	// not cleared within it get Unavailable. 0 trusts none.
	OutageGrace time.Duration
}

// DefaultConfig returns the production rules.
func DefaultConfig() Config {
	return Config{BcryptCost: 12, TokenTTL: 24 * time.Hour, MaxFailedAttempts: 10, LockFor: time.Hour, Now: time.Now, OutageGrace: time.Minute}
}

// Service registers users and authenticates them.
type Service struct {
	accounts Accounts
	tokens   Tokens
	denylist Denylist
	cfg      Config
	// dummyHash is compared against when the email is unknown, so that an
	// unknown email costs the same bcrypt work as a wrong password.
	dummyHash []byte
	cleared   clearances
	revoked   observers
}

// clearances remembers when the denylist last cleared each token, for
// Config.OutageGrace.
type clearances struct {
	mu      sync.Mutex
	at      map[string]time.Time // by jti
	inserts int
}

func (c *clearances) note(jti string, now time.Time, grace time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string]time.Time{}
	}
	c.at[jti] = now
	// Forget stale entries now and then, so memory follows the tokens
	// in use within the grace rather than every token ever seen.
	if c.inserts++; c.inserts%4096 == 0 {
		for k, t := range c.at {
			if now.Sub(t) >= grace {
				delete(c.at, k)
			}
		}
	}
}

func (c *clearances) fresh(jti string, now time.Time, grace time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[jti]
	return ok && now.Sub(t) < grace
}

func (c *clearances) forget(jti string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.at, jti)
}

// NewService returns a Service. It computes one bcrypt hash at cfg.BcryptCost.
func NewService(accounts Accounts, tokens Tokens, denylist Denylist, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("auth: bcrypt cost %d: %w", cfg.BcryptCost, err)
	}
	return &Service{accounts: accounts, tokens: tokens, denylist: denylist, cfg: cfg, dummyHash: h}, nil
}

// Registration is what a new user submits.
type Registration struct {
	Email       string
	Password    string
	Username    string
	DisplayName *string
}

// Session is a signed-in user and their token.
type Session struct {
	User   users.User
	Token  string
	Claims Claims
}

// Register validates r, stores the user and signs them in.
// Invalid lists every problem, including a taken email or username.
func (s *Service) Register(ctx context.Context, r Registration) (Session, error) {
	email := normalizeEmail(r.Email)
	username := strings.ToLower(strings.TrimSpace(r.Username))
	var problems []string
	switch {
	case email == "":
		problems = append(problems, "Email can't be blank")
	case len(email) > MaxEmail || !emailPattern.MatchString(email):
		problems = append(problems, "Email is invalid")
	}
	switch n := utf8.RuneCountInString(r.Password); {
	case r.Password == "":
		problems = append(problems, "Password can't be blank")
	case n < MinPassword:
		problems = append(problems, fmt.Sprintf("Password is too short (minimum is %d characters)", MinPassword))
	case n > MaxPassword:
		problems = append(problems, fmt.Sprintf("Password is too long (maximum is %d characters)", MaxPassword))
	}
	switch n := utf8.RuneCountInString(username); {
	case username == "":
		problems = append(problems, "Username can't be blank")
	case n < MinUsername:
		problems = append(problems, fmt.Sprintf("Username is too short (minimum is %d characters)", MinUsername))
	case n > MaxUsername:
		problems = append(problems, fmt.Sprintf("Username is too long (maximum is %d characters)", MaxUsername))
	case !usernamePattern.MatchString(username):
		problems = append(problems, "Username may only contain letters, numbers and underscores")
	}
	if r.DisplayName != nil {
		problems = append(problems, users.ValidateDisplayName(*r.DisplayName)...)
	}
	if len(problems) > 0 {
		return Session{}, core.InvalidDetails(problems...)
	}
	hash, err := bcrypt.GenerateFromPassword(bcryptInput(r.Password), s.cfg.BcryptCost)
	if err != nil {
		return Session{}, core.Wrap(core.Internal, "", err)
	}
	u, err := s.accounts.Create(ctx, users.NewUser{
		Email: email, Username: username, DisplayName: r.DisplayName,
		PasswordHash: string(hash), CreatedAt: s.cfg.Now(),
	})
	if err != nil {
		var ce *core.Error
		if errors.As(err, &ce) && ce.Kind == core.Conflict {
			// Registration reports a taken email or username as a validation problem, as Devise does.
			return Session{}, &core.Error{Kind: core.Invalid, Details: ce.Details, Err: err}
		}
		return Session{}, err
	}
	return s.issue(u)
}

// Login checks the credentials. Unauthenticated with MsgInvalidCredentials
// for an unknown email or a wrong password alike, and with MsgLocked for a
// locked account whatever the password.
func (s *Service) Login(ctx context.Context, email, password string) (Session, error) {
	now := s.cfg.Now()
	// No account has a password over MaxPassword (registration refuses
	// them, as Devise did), so a longer one is wrong for every email alike:
	// it is answered at once, telling nothing about the account, and
	// spends no bcrypt and no failed attempt.
	if utf8.RuneCountInString(password) > MaxPassword {
		return Session{}, core.E(core.Unauthenticated, MsgInvalidCredentials)
	}
	// Every other failure costs one bcrypt, whatever its cause (unknown
	// email, wrong password, locked account), so that response times tell
	// nothing.
	pw := bcryptInput(password)
	u, err := s.accounts.GetByEmail(ctx, normalizeEmail(email))
	if core.Is(err, core.NotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, pw)
		return Session{}, core.E(core.Unauthenticated, MsgInvalidCredentials)
	}
	if err != nil {
		return Session{}, err
	}
	// bcrypt runs before the lock check so that a locked account answers as slowly as any other.
	match := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), pw) == nil
	if s.locked(&u, now) {
		return Session{}, core.E(core.Unauthenticated, MsgLocked)
	}
	if match && u.FailedAttempts == 0 && u.LockedAt == nil {
		return s.issue(u) // nothing to record: spare the common login a write
	}
	var lockedNow bool
	u, err = s.accounts.Update(ctx, u.ID, func(u *users.User) error {
		lockedNow = false
		if u.LockedAt != nil && !s.locked(u, now) {
			u.LockedAt, u.FailedAttempts = nil, 0 // the lock has lapsed
		}
		if s.locked(u, now) {
			lockedNow = true
			return nil
		}
		if match {
			u.FailedAttempts = 0
			return nil
		}
		u.FailedAttempts++
		if u.FailedAttempts >= s.cfg.MaxFailedAttempts {
			u.LockedAt = &now
		}
		return nil
	})
	if err != nil {
		return Session{}, err
	}
	switch {
	case lockedNow:
		return Session{}, core.E(core.Unauthenticated, MsgLocked)
	case !match:
		return Session{}, core.E(core.Unauthenticated, MsgInvalidCredentials)
	}
	return s.issue(u)
}

func (s *Service) locked(u *users.User, now time.Time) bool {
	return u.LockedAt != nil && now.Before(u.LockedAt.Add(s.cfg.LockFor))
}

// Logout revokes the token described by c until it expires.
func (s *Service) Logout(ctx context.Context, c Claims) error {
	s.cleared.forget(c.ID)
	if err := s.denylist.Revoke(ctx, c.ID, c.ExpiresAt); err != nil {
		return err
	}
	s.announce(ctx, c.ID)
	return nil
}

// Authenticate verifies a token and returns its user. Unauthenticated for a
// bad, expired or revoked token or a deleted user; Unavailable when the
// denylist cannot be checked (a client must not be signed out for that).
func (s *Service) Authenticate(ctx context.Context, token string) (users.User, Claims, error) {
	c, err := s.Check(ctx, token)
	if err != nil {
		return users.User{}, Claims{}, err
	}
	u, err := s.accounts.Get(ctx, c.UserID)
	if core.Is(err, core.NotFound) {
		return users.User{}, Claims{}, core.E(core.Unauthenticated, MsgSignIn)
	}
	if err != nil {
		return users.User{}, Claims{}, err
	}
	return u, c, nil
}

// Check is Authenticate without loading the user, for a caller that holds
// it from moments ago (a resumed cable session): the token is verified and
// checked against the logouts all the same.
func (s *Service) Check(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, core.E(core.Unauthenticated, MsgSignIn)
	}
	c, err := s.tokens.Verify(token, s.cfg.Now())
	if err != nil {
		return Claims{}, err
	}
	now := s.cfg.Now()
	revoked, err := s.denylist.Revoked(ctx, c.ID)
	switch {
	case err != nil && core.Is(err, core.Unavailable) && s.cleared.fresh(c.ID, now, s.cfg.OutageGrace):
		// Cleared moments ago; the denylist is restarting.
	case err != nil:
		return Claims{}, err
	case revoked:
		return Claims{}, core.E(core.Unauthenticated, MsgRevoked)
	case s.cfg.OutageGrace > 0:
		s.cleared.note(c.ID, now, s.cfg.OutageGrace)
	}
	return c, nil
}

func (s *Service) issue(u users.User) (Session, error) {
	now := s.cfg.Now().Truncate(time.Second)
	c := Claims{UserID: u.ID, ID: uuid.NewString(), IssuedAt: now, ExpiresAt: now.Add(s.cfg.TokenTTL)}
	tok, err := s.tokens.Sign(c)
	if err != nil {
		return Session{}, core.Wrap(core.Internal, "", err)
	}
	return Session{User: u, Token: tok, Claims: c}, nil
}

// bcryptInput is the part of a password that bcrypt hashes: its first 72
// bytes. Ruby's bcrypt, which made the hashes Devise stored, ignores the
// rest (even mid-character); Go's refuses longer input rather than do the
// same, so it is given those bytes only, at registration and login alike.
func bcryptInput(password string) []byte {
	const bcryptBytes = 72
	b := []byte(password)
	return b[:min(len(b), bcryptBytes)]
}

// Devise strips and downcases emails before storing and looking them up.
func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }
