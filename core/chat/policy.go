package chat

// The policies: one function per decision, as the original's Pundit policies,
// with its holes closed. Each takes what the decision needs and nothing else.
// Nested routes hide conversations from non-members (NotFound) before any
// policy runs, so these only decide among members.

// canDeleteConversation: current members only, the creator or an admin. A
// creator who left has no say over the others' history any more; actor is
// nil for a non-member.
func canDeleteConversation(c *Conversation, actor *Membership) bool {
	return actor != nil && (c.CreatedByID == actor.UserID || actor.Role == RoleAdmin)
}

// canAddMember: admins only.
func canAddMember(actor *Membership) bool { return actor.Role == RoleAdmin }

// canRemoveMember: admins remove anyone, members only themselves.
func canRemoveMember(actor *Membership, targetID int64) bool {
	return actor.Role == RoleAdmin || actor.UserID == targetID
}

// canEditMessage: the author only.
func canEditMessage(msg *Message, actorID int64) bool { return msg.UserID == actorID }

// canDeleteMessage: the author, or an admin of the conversation.
func canDeleteMessage(msg *Message, actor *Membership) bool {
	return msg.UserID == actor.UserID || actor.Role == RoleAdmin
}

// canRemoveReaction: its owner only.
func canRemoveReaction(r *Reaction, actorID int64) bool { return r.UserID == actorID }
