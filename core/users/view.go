package users

import "github.com/chatterly/chatterly/core"

// Public is the user blueprint's public view: search results, members,
// message authors, event payloads.
type Public struct {
	ID          int64   `json:"id"`
	Username    string  `json:"username"`
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
	Online      bool    `json:"online"`
}

// Private is the view of the signed-in user: the public view plus email and last_seen_at.
type Private struct {
	Public
	Email      string     `json:"email"`
	LastSeenAt *core.Time `json:"last_seen_at"`
}

// PublicView renders the public view.
func (u *User) PublicView(online bool) Public {
	return Public{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL, Online: online}
}

// PrivateView renders the private view.
func (u *User) PrivateView(online bool) Private {
	return Private{Public: u.PublicView(online), Email: u.Email, LastSeenAt: core.TimePtr(u.LastSeenAt)}
}
