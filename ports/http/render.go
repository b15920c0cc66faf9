package http

import (
	"time"

	"github.com/chatterly/chatterly/core/users"
)

// Time renders as ISO 8601 UTC with milliseconds, as Rails does.
type Time time.Time

const timeLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(timeLayout)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, timeLayout)
	return append(b, '"'), nil
}

func timePtr(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	v := Time(*t)
	return &v
}

// UserPublic is the user blueprint's public view.
type UserPublic struct {
	ID          int64   `json:"id"`
	Username    string  `json:"username"`
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
	Online      bool    `json:"online"`
}

// UserPrivate is the view of the signed-in user: the public view plus email and last_seen_at.
type UserPrivate struct {
	UserPublic
	Email      string `json:"email"`
	LastSeenAt *Time  `json:"last_seen_at"`
}

func publicUser(u *users.User, online bool) UserPublic {
	return UserPublic{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL, Online: online}
}

func privateUser(u *users.User, online bool) UserPrivate {
	return UserPrivate{UserPublic: publicUser(u, online), Email: u.Email, LastSeenAt: timePtr(u.LastSeenAt)}
}
