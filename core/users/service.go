package users

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/chatterly/chatterly/core"
)

// Limits on profile fields and searches.
const (
	MaxDisplayName = 50
	MaxAvatarURL   = 2048
	MaxSearchTerm  = 100
	SearchLimit    = 20
)

// OnlineChecker tells which users are online; presence.Tracker satisfies it.
type OnlineChecker interface {
	Online(ctx context.Context, ids []int64) (map[int64]bool, error)
}

// Service answers the profile operations of the users API.
type Service struct {
	store    Store
	presence OnlineChecker
}

// NewService returns a Service over store and presence.
func NewService(store Store, presence OnlineChecker) *Service {
	return &Service{store: store, presence: presence}
}

// Search returns up to SearchLimit users matching term; an empty term matches nobody.
// Invalid when the term is longer than MaxSearchTerm characters.
func (s *Service) Search(ctx context.Context, term string) ([]User, error) {
	term = strings.TrimSpace(term)
	if term == "" || strings.ContainsRune(term, 0) { // nobody's name holds NUL, and PostgreSQL rejects it
		return []User{}, nil
	}
	if utf8.RuneCountInString(term) > MaxSearchTerm {
		return nil, core.InvalidDetails(fmt.Sprintf("Search is too long (maximum is %d characters)", MaxSearchTerm))
	}
	return s.store.Search(ctx, term, SearchLimit)
}

// Get returns the user with the id; NotFound when there is none.
func (s *Service) Get(ctx context.Context, id int64) (User, error) {
	return s.store.Get(ctx, id)
}

// UpdateProfile changes the profile of target on behalf of actor.
// Forbidden unless actor is target; Invalid when a field breaks a rule.
func (s *Service) UpdateProfile(ctx context.Context, actorID, targetID int64, p Profile) (User, error) {
	if actorID != targetID {
		return User{}, core.E(core.Forbidden, "Not authorized")
	}
	if problems := p.validate(); len(problems) > 0 {
		return User{}, core.InvalidDetails(problems...)
	}
	return s.store.Update(ctx, targetID, func(u *User) error {
		switch {
		case p.ClearDisplayName:
			u.DisplayName = nil
		case p.DisplayName != nil:
			u.DisplayName = p.DisplayName
		}
		switch {
		case p.ClearAvatarURL:
			u.AvatarURL = nil
		case p.AvatarURL != nil:
			u.AvatarURL = p.AvatarURL
		}
		return nil
	})
}

// Online reports which of the users are online, in one call to the presence store.
func (s *Service) Online(ctx context.Context, us ...User) (map[int64]bool, error) {
	if len(us) == 0 {
		return map[int64]bool{}, nil
	}
	ids := make([]int64, len(us))
	for i := range us {
		ids[i] = us[i].ID
	}
	return s.presence.Online(ctx, ids)
}

func (p Profile) validate() []string {
	var problems []string
	if p.DisplayName != nil {
		problems = append(problems, ValidateDisplayName(*p.DisplayName)...)
	}
	if p.AvatarURL != nil {
		problems = append(problems, validateAvatarURL(*p.AvatarURL)...)
	}
	return problems
}

// ValidateDisplayName returns the problems with a display name, if any.
func ValidateDisplayName(name string) []string {
	if utf8.RuneCountInString(name) > MaxDisplayName {
		return []string{fmt.Sprintf("Display name is too long (maximum is %d characters)", MaxDisplayName)}
	}
	if hasControl(name) {
		return []string{"Display name must not contain control characters"}
	}
	return nil
}

// An avatar URL ends up in an <img src>, so only absolute http(s) URLs are
// accepted: javascript: and data: URLs would be an XSS vector in the client.
func validateAvatarURL(raw string) []string {
	if len(raw) > MaxAvatarURL {
		return []string{fmt.Sprintf("Avatar url is too long (maximum is %d characters)", MaxAvatarURL)}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || hasControl(raw) {
		return []string{"Avatar url must be an http or https URL"}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
