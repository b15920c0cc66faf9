package calls

import (
	"context"
	"encoding/json"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// View is the call session blueprint; with participants it adds
// started_at and participants (the "with participants" view).
type View struct {
	ID             int64          `json:"id"`
	ConversationID int64          `json:"conversation_id"`
	InitiatorID    int64          `json:"initiator_id"`
	CallType       string         `json:"call_type"`
	Status         string         `json:"status"`
	CreatedAt      core.Time      `json:"created_at"`
	StartedAt      *core.Time     `json:"started_at,omitempty"`
	Participants   []users.Public `json:"participants,omitempty"`
	withPeople     bool
}

// MarshalJSON keeps started_at (even null) and participants (even empty)
// in the "with participants" view only.
func (v View) MarshalJSON() ([]byte, error) {
	type plain struct {
		ID             int64     `json:"id"`
		ConversationID int64     `json:"conversation_id"`
		InitiatorID    int64     `json:"initiator_id"`
		CallType       string    `json:"call_type"`
		Status         string    `json:"status"`
		CreatedAt      core.Time `json:"created_at"`
	}
	p := plain{v.ID, v.ConversationID, v.InitiatorID, v.CallType, v.Status, v.CreatedAt}
	if !v.withPeople {
		return json.Marshal(p)
	}
	parts := v.Participants
	if parts == nil {
		parts = []users.Public{}
	}
	return json.Marshal(struct {
		plain
		StartedAt    *core.Time     `json:"started_at"`
		Participants []users.Public `json:"participants"`
	}{p, v.StartedAt, parts})
}

// view renders a call; with people, its current participants too.
func (s *Service) view(ctx context.Context, c Call, withPeople bool) (View, error) {
	v := View{
		ID: c.ID, ConversationID: c.ConversationID, InitiatorID: c.InitiatorID, CallType: c.Type.String(),
		Status: c.Status.String(), CreatedAt: core.Time(c.CreatedAt), withPeople: withPeople,
	}
	if !withPeople {
		return v, nil
	}
	v.StartedAt = core.TimePtr(c.StartedAt)
	parts, err := s.d.Store.Participants(ctx, c.ID)
	if err != nil {
		return View{}, err
	}
	var ids []int64
	for _, p := range parts {
		if p.JoinedAt != nil && p.LeftAt == nil {
			ids = append(ids, p.UserID)
		}
	}
	us, err := s.d.Users.GetMany(ctx, ids)
	if err != nil {
		return View{}, err
	}
	online := s.online(ctx, ids)
	for i := range us {
		v.Participants = append(v.Participants, us[i].PublicView(online[us[i].ID]))
	}
	return v, nil
}

// The events of the contract's CallChannel row, plus participant_joined,
// participant_declined and participant_left for group calls (the web
// client ignores unknown types).
type (
	incomingCall struct {
		Type           string       `json:"type"`
		CallSessionID  int64        `json:"call_session_id"`
		Caller         users.Public `json:"caller"`
		CallType       string       `json:"call_type"`
		ConversationID int64        `json:"conversation_id"`
	}
	callAccepted struct {
		Type          string       `json:"type"`
		CallSessionID int64        `json:"call_session_id"`
		AcceptedBy    users.Public `json:"accepted_by"`
	}
	callDeclined struct {
		Type          string       `json:"type"`
		CallSessionID int64        `json:"call_session_id"`
		DeclinedBy    users.Public `json:"declined_by"`
	}
	// callEnded has a reason only when the call goes on without the
	// recipient (AnsweredByOther).
	callEnded struct {
		Type          string `json:"type"`
		CallSessionID int64  `json:"call_session_id"`
		Reason        string `json:"reason,omitempty"`
	}
	muted struct {
		Type          string `json:"type"`
		CallSessionID int64  `json:"call_session_id"`
		UserID        int64  `json:"user_id"`
		Muted         bool   `json:"muted"`
	}
	cameraToggled struct {
		Type          string `json:"type"`
		CallSessionID int64  `json:"call_session_id"`
		UserID        int64  `json:"user_id"`
		CameraOff     bool   `json:"camera_off"`
	}
	participantJoined struct {
		Type          string       `json:"type"`
		CallSessionID int64        `json:"call_session_id"`
		User          users.Public `json:"user"`
	}
	participantDeclined struct {
		Type          string       `json:"type"`
		CallSessionID int64        `json:"call_session_id"`
		User          users.Public `json:"user"`
	}
	participantLeft struct {
		Type          string `json:"type"`
		CallSessionID int64  `json:"call_session_id"`
		UserID        int64  `json:"user_id"`
	}
)
