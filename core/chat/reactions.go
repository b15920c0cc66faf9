package chat

import (
	"context"

	"github.com/chatterly/chatterly/core"
)

// AddReaction puts the actor's emoji on a message of a conversation they belong to.
func (s *Service) AddReaction(ctx context.Context, actorID, messageID int64, emoji string) (ReactionView, error) {
	m, err := s.store.GetMessage(ctx, 0, messageID)
	if core.Is(err, core.NotFound) || (err == nil && m.DeletedAt != nil) {
		return ReactionView{}, errNotFound
	} else if err != nil {
		return ReactionView{}, err
	}
	if _, err := s.member(ctx, m.ConversationID, actorID); err != nil {
		return ReactionView{}, err
	}
	if problems := validateText("Emoji", emoji, MaxEmoji); len(problems) > 0 {
		return ReactionView{}, core.InvalidDetails(problems...)
	}
	r, err := s.store.CreateReaction(ctx, Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: actorID, Emoji: emoji, CreatedAt: s.clock()})
	switch {
	case core.Is(err, core.Conflict):
		return ReactionView{}, core.InvalidDetails("Emoji has already been taken")
	case core.Is(err, core.NotFound):
		return ReactionView{}, errNotFound // the message was deleted with its conversation meanwhile
	case err != nil:
		return ReactionView{}, err
	}
	v := reactionView(&r)
	s.publish(ctx, ConversationStream(m.ConversationID), s.render(reactionAddedEvent{Type: "reaction_added", Reaction: v}))
	return v, nil
}

// RemoveReaction deletes a reaction; its owner only.
func (s *Service) RemoveReaction(ctx context.Context, actorID, reactionID int64) error {
	r, err := s.store.GetReaction(ctx, reactionID)
	if err != nil {
		return err
	}
	m, err := s.store.GetMessage(ctx, 0, r.MessageID)
	if err != nil {
		return err
	}
	if _, err := s.member(ctx, m.ConversationID, actorID); err != nil {
		return err
	}
	if !canRemoveReaction(&r, actorID) {
		return errForbidden
	}
	if err := s.store.DeleteReaction(ctx, reactionID); err != nil {
		return err
	}
	s.publish(ctx, ConversationStream(m.ConversationID), s.render(reactionRemovedEvent{Type: "reaction_removed", ReactionID: r.ID, MessageID: r.MessageID}))
	return nil
}
