package chat

import (
	"context"
	"slices"

	"github.com/chatterly/chatterly/core"
)

// member returns actor's membership of a conversation; NotFound for
// non-members, so nested routes do not reveal that a conversation exists.
func (s *Service) member(ctx context.Context, convID, actorID int64) (Membership, error) {
	return memberIn(ctx, s.store, convID, actorID)
}

// memberIn is member on st, a transaction's store.
func memberIn(ctx context.Context, st Store, convID, actorID int64) (Membership, error) {
	m, err := st.GetMembership(ctx, convID, actorID)
	if core.Is(err, core.NotFound) {
		return Membership{}, errNotFound
	}
	return m, err
}

// AddMember adds a user to a group or channel; admins only. The new member
// gets new_conversation on their user stream, as the members named at
// creation do, and the others get member_joined.
func (s *Service) AddMember(ctx context.Context, actorID, convID, userID int64) error {
	// Read before the transaction, which must not wait on another
	// connection; its NotFound is reported after the checks that come first.
	u, userErr := s.users.Get(ctx, userID)
	if userErr != nil && !core.Is(userErr, core.NotFound) {
		return userErr
	}
	var c Conversation
	err := s.store.InTx(ctx, func(tx Store) error {
		// Locked, so that the actor cannot leave (and hand over) meanwhile.
		var actor Membership
		var err error
		if c, actor, err = lockAsMember(ctx, tx, convID, actorID); err != nil {
			return err
		}
		if !canAddMember(&actor) {
			return errForbidden
		}
		if c.Type == Direct {
			return core.InvalidDetails("A direct conversation has exactly two members")
		}
		if userErr != nil {
			return core.InvalidDetails("User does not exist")
		}
		err = tx.AddMembership(ctx, Membership{ConversationID: convID, UserID: userID, Role: RoleMember, CreatedAt: s.clock()})
		if core.Is(err, core.Conflict) {
			return core.InvalidDetails("User is already a member")
		}
		return err
	})
	if err != nil {
		return err
	}
	online := s.online(ctx, []int64{u.ID})
	s.publish(ctx, ConversationStream(convID), s.render(memberJoinedEvent{Type: "member_joined", User: u.PublicView(online[u.ID])}))
	// The member is in: what follows only informs, so its failures are logged.
	// A new member starts with everything before they joined read.
	view, err := s.renderConversation(ctx, c, nil)
	if err != nil {
		s.log.WarnContext(ctx, "rendering a conversation for its new member failed", "conversation_id", convID, "err", err)
		return nil
	}
	s.publish(ctx, UserStream(userID), s.render(newConversationEvent{Type: "new_conversation", Conversation: view}))
	if s.intro != nil {
		var existing []int64
		for _, m := range view.Members {
			if m.ID != userID {
				existing = append(existing, m.ID)
			}
		}
		s.intro.Introduce(context.WithoutCancel(ctx), []int64{userID}, existing)
	}
	return nil
}

// RemoveMember takes a user out of a conversation: admins remove anyone,
// members only themselves. Nobody leaves a DM: it would leave a one-person
// DM that the deduplication then keeps handing back. When the removal
// leaves members but no admin, the longest-standing member becomes admin
// (member_promoted), so that someone can still add members.
func (s *Service) RemoveMember(ctx context.Context, actorID, convID, userID int64) error {
	var promoted int64
	err := s.store.InTx(ctx, func(tx Store) error {
		// Locked, so that two admins leaving at once cannot each count
		// on the other to stay.
		c, actor, err := lockAsMember(ctx, tx, convID, actorID)
		if err != nil {
			return err
		}
		if !canRemoveMember(&actor, userID) {
			return errForbidden
		}
		if c.Type == Direct {
			return core.InvalidDetails("Members cannot leave a direct conversation")
		}
		if err := tx.RemoveMembership(ctx, convID, userID); err != nil {
			return err
		}
		rest, err := tx.ListMemberships(ctx, []int64{convID})
		if err != nil {
			return err
		}
		heir, ok := successor(rest)
		if !ok {
			return nil
		}
		promoted = heir.UserID
		return tx.SetRole(ctx, convID, heir.UserID, RoleAdmin, s.clock())
	})
	if err != nil {
		return err
	}
	s.publishEvicting(ctx, ConversationStream(convID), s.render(memberLeftEvent{Type: "member_left", UserID: userID}), Eviction{UserID: userID})
	if promoted != 0 {
		s.publish(ctx, ConversationStream(convID), s.render(memberPromotedEvent{Type: "member_promoted", UserID: promoted, Role: "admin"}))
	}
	return nil
}

// successor returns who becomes admin of a conversation whose members are
// ms, in ListMemberships order: the longest-standing member, when there
// are members and none of them is an admin.
func successor(ms []Membership) (Membership, bool) {
	if len(ms) == 0 || slices.ContainsFunc(ms, func(m Membership) bool { return m.Role == RoleAdmin }) {
		return Membership{}, false
	}
	return ms[0], true
}

// lockAsMember locks a conversation in tx and reads the actor's membership
// of it; NotFound for a stranger as for a conversation that does not exist.
func lockAsMember(ctx context.Context, tx Store, convID, actorID int64) (Conversation, Membership, error) {
	c, err := tx.LockConversation(ctx, convID)
	if core.Is(err, core.NotFound) {
		return Conversation{}, Membership{}, errNotFound
	} else if err != nil {
		return Conversation{}, Membership{}, err
	}
	m, err := memberIn(ctx, tx, convID, actorID)
	return c, m, err
}
