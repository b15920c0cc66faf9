package chat

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chatterly/chatterly/core"
)

// DirectKey is the key that makes a DM unique per pair of users.
func DirectKey(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return strconv.FormatInt(a, 10) + ":" + strconv.FormatInt(b, 10)
}

// ConversationInput is what a client submits to create a conversation.
type ConversationInput struct {
	Type        string // "direct", "group" or "channel"; "" means group
	Name        *string
	Description *string
	MemberIDs   []int64
}

// ListConversations returns the actor's conversations, most recently active first.
func (s *Service) ListConversations(ctx context.Context, actorID int64) ([]ConversationView, error) {
	listed, err := s.store.ListConversations(ctx, actorID, UnreadCap)
	if err != nil {
		return nil, err
	}
	convs := make([]Conversation, len(listed))
	reads := make(map[int64]ReadState, len(listed))
	for i := range listed {
		convs[i] = listed[i].Conversation
		reads[convs[i].ID] = readState(convs[i].ID, listed[i].LastRead, listed[i].Unread)
	}
	return s.renderConversations(ctx, convs, reads)
}

// CreateConversation creates a conversation with the actor as admin. For a
// DM that already exists it returns that one with created false.
func (s *Service) CreateConversation(ctx context.Context, actorID int64, in ConversationInput) (v ConversationView, created bool, err error) {
	typ, problems := validateConversation(in)
	if len(problems) > 0 {
		return v, false, core.InvalidDetails(problems...)
	}
	// Unknown ids are ignored, as the original did; so is the actor's own.
	var candidates []int64
	for _, id := range in.MemberIDs {
		if id != actorID && id > 0 && !slices.Contains(candidates, id) {
			candidates = append(candidates, id)
		}
	}
	others, err := s.users.GetMany(ctx, candidates)
	if err != nil {
		return v, false, err
	}
	now := s.clock()
	c := Conversation{Type: typ, Name: in.Name, Description: in.Description, CreatedByID: actorID, CreatedAt: now, UpdatedAt: now}
	if typ == Direct {
		if len(others) != 1 {
			return v, false, core.InvalidDetails("A direct conversation needs exactly one other member")
		}
		key := DirectKey(actorID, others[0].ID)
		c.DirectKey = &key
		if existing, err := s.store.GetDirect(ctx, key); err == nil {
			v, err = s.renderAsMember(ctx, existing, actorID)
			return v, false, err
		} else if !core.Is(err, core.NotFound) {
			return v, false, err
		}
	}
	members := []Membership{{UserID: actorID, Role: RoleAdmin, CreatedAt: now}}
	for _, u := range others {
		members = append(members, Membership{UserID: u.ID, Role: RoleMember, CreatedAt: now})
	}
	stored, err := s.store.CreateConversation(ctx, c, members)
	if core.Is(err, core.Conflict) && c.DirectKey != nil {
		// Someone created the same DM a moment ago: that one is the answer.
		existing, err := s.store.GetDirect(ctx, *c.DirectKey)
		if err != nil {
			return v, false, err
		}
		v, err = s.renderAsMember(ctx, existing, actorID)
		return v, false, err
	}
	if err != nil {
		return v, false, err
	}
	if v, err = s.renderConversation(ctx, stored, nil); err != nil {
		return v, false, err
	}
	payload := s.render(newConversationEvent{Type: "new_conversation", Conversation: v})
	ids := make([]int64, len(members))
	for i, m := range members {
		ids[i] = m.UserID
		if i > 0 {
			s.publish(ctx, UserStream(m.UserID), payload)
		}
	}
	if s.intro != nil {
		s.intro.Introduce(context.WithoutCancel(ctx), ids, nil)
	}
	return v, true, nil
}

func validateConversation(in ConversationInput) (ConversationType, []string) {
	var problems []string
	typ := Group
	switch in.Type {
	case "", "group":
	case "direct":
		typ = Direct
	case "channel":
		typ = Channel
	default:
		problems = append(problems, "Conversation type is not included in the list")
	}
	if typ != Direct && (in.Name == nil || strings.TrimSpace(*in.Name) == "") {
		problems = append(problems, "Name can't be blank")
	}
	if in.Name != nil && utf8.RuneCountInString(*in.Name) > MaxName {
		problems = append(problems, fmt.Sprintf("Name is too long (maximum is %d characters)", MaxName))
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > MaxDescription {
		problems = append(problems, fmt.Sprintf("Description is too long (maximum is %d characters)", MaxDescription))
	}
	if len(in.MemberIDs) > MaxMemberIDs {
		problems = append(problems, fmt.Sprintf("Member ids is too long (maximum is %d users)", MaxMemberIDs))
	}
	return typ, problems
}

// GetConversation returns a conversation to a member; Forbidden for others.
func (s *Service) GetConversation(ctx context.Context, actorID, id int64) (ConversationView, error) {
	c, err := s.store.GetConversation(ctx, id)
	if err != nil {
		return ConversationView{}, err
	}
	m, err := s.store.GetMembership(ctx, id, actorID)
	if core.Is(err, core.NotFound) {
		return ConversationView{}, errForbidden
	} else if err != nil {
		return ConversationView{}, err
	}
	st, err := s.readStateOf(ctx, m)
	if err != nil {
		return ConversationView{}, err
	}
	return s.renderConversation(ctx, c, &st)
}

// renderAsMember renders c with the read state of actorID, a member.
func (s *Service) renderAsMember(ctx context.Context, c Conversation, actorID int64) (ConversationView, error) {
	m, err := s.store.GetMembership(ctx, c.ID, actorID)
	if err != nil {
		return ConversationView{}, err
	}
	st, err := s.readStateOf(ctx, m)
	if err != nil {
		return ConversationView{}, err
	}
	return s.renderConversation(ctx, c, &st)
}

// DeleteConversation deletes a conversation and everything in it; only a
// member may, its creator or an admin. Forbidden for anyone else, a
// creator who left included.
func (s *Service) DeleteConversation(ctx context.Context, actorID, id int64) error {
	var members []Membership
	err := s.store.InTx(ctx, func(tx Store) error {
		// Locked, so that the actor cannot leave between the check and the delete.
		c, err := tx.LockConversation(ctx, id)
		if err != nil {
			return err
		}
		var mp *Membership
		if m, err := tx.GetMembership(ctx, id, actorID); err == nil {
			mp = &m
		} else if !core.Is(err, core.NotFound) {
			return err
		}
		if !canDeleteConversation(&c, mp) {
			return errForbidden
		}
		if members, err = tx.ListMemberships(ctx, []int64{id}); err != nil {
			return err
		}
		return tx.DeleteConversation(ctx, id)
	})
	if err != nil {
		return err
	}
	payload := s.render(conversationDeletedEvent{Type: "conversation_deleted", ConversationID: id})
	for _, m := range members {
		s.publish(ctx, UserStream(m.UserID), payload)
	}
	// Also on the conversation's own stream, so that every instance drops
	// its subscribers at once (the web client ignores the unknown type).
	s.publishEvicting(ctx, ConversationStream(id), payload, Eviction{Everyone: true})
	return nil
}

// CanSubscribe allows a user to receive a conversation's events: members
// only. NotFound for anyone else, as for the nested REST routes.
func (s *Service) CanSubscribe(ctx context.Context, userID, convID int64) error {
	_, err := s.member(ctx, convID, userID)
	return err
}
