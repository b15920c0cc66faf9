package chat

import (
	"context"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// renderConversations renders conversations with their members in a fixed
// number of round trips: memberships, users, presence. reads are the
// reader's read states by conversation; a conversation without one renders
// as a new member sees it, nothing marked and nothing unread.
func (s *Service) renderConversations(ctx context.Context, convs []Conversation, reads map[int64]ReadState) ([]ConversationView, error) {
	out := make([]ConversationView, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	ids := make([]int64, len(convs))
	for i := range convs {
		ids[i] = convs[i].ID
	}
	ms, err := s.store.ListMemberships(ctx, ids)
	if err != nil {
		return nil, err
	}
	byUser, online, err := s.people(ctx, func(yield func(int64)) {
		for _, m := range ms {
			yield(m.UserID)
		}
	})
	if err != nil {
		return nil, err
	}
	byConv := make(map[int64][]users.Public, len(convs))
	for _, m := range ms {
		if u, ok := byUser[m.UserID]; ok {
			byConv[m.ConversationID] = append(byConv[m.ConversationID], u.PublicView(online[u.ID]))
		}
	}
	for i := range convs {
		c := &convs[i]
		members := byConv[c.ID]
		if members == nil {
			members = []users.Public{}
		}
		out[i] = ConversationView{
			ID: c.ID, Name: c.Name, Description: c.Description, ConversationType: c.Type.String(),
			CreatedByID: c.CreatedByID, CreatedAt: core.Time(c.CreatedAt), MemberCount: len(members), Members: members,
		}
		if st, ok := reads[c.ID]; ok {
			out[i].LastReadMessageID, out[i].UnreadCount, out[i].UnreadCapped = st.LastReadMessageID, st.UnreadCount, st.UnreadCapped
		}
	}
	return out, nil
}

// renderConversation is renderConversations for one conversation, read by
// a member whose read state is st (nil for a new member's).
func (s *Service) renderConversation(ctx context.Context, c Conversation, st *ReadState) (ConversationView, error) {
	var reads map[int64]ReadState
	if st != nil {
		reads = map[int64]ReadState{c.ID: *st}
	}
	views, err := s.renderConversations(ctx, []Conversation{c}, reads)
	if err != nil {
		return ConversationView{}, err
	}
	return views[0], nil
}

// renderMessages renders messages with authors, reactions and call
// summaries in a fixed number of round trips whatever their number. st is
// the store to read, a transaction's inside one. calls are the summaries
// of the calls the messages log when the caller read them already; nil
// means read them from the call store.
func (s *Service) renderMessages(ctx context.Context, st Store, msgs []Message, withReactions bool, calls map[int64]*CallSummary, known ...users.User) ([]MessageView, error) {
	out := make([]MessageView, len(msgs))
	if len(msgs) == 0 {
		return out, nil
	}
	ids := make([]int64, len(msgs))
	var callIDs []int64
	for i := range msgs {
		ids[i] = msgs[i].ID
		if msgs[i].CallSessionID != nil {
			callIDs = append(callIDs, *msgs[i].CallSessionID)
		}
	}
	var reactions []Reaction
	if withReactions {
		var err error
		if reactions, err = st.ListReactions(ctx, ids); err != nil {
			return nil, err
		}
	}
	if calls == nil {
		var err error
		if calls, err = s.callSummaries(ctx, callIDs); err != nil {
			return nil, err
		}
	}
	byUser, online, err := s.people(ctx, func(yield func(int64)) {
		for i := range msgs {
			yield(msgs[i].UserID)
		}
	}, known...)
	if err != nil {
		return nil, err
	}
	byMsg := map[int64][]ReactionView{}
	for i := range reactions {
		byMsg[reactions[i].MessageID] = append(byMsg[reactions[i].MessageID], reactionView(&reactions[i]))
	}
	for i := range msgs {
		m := &msgs[i]
		rs := byMsg[m.ID]
		if rs == nil {
			rs = []ReactionView{}
		}
		author := users.Public{ID: m.UserID, Username: "deleted_user"}
		if u, ok := byUser[m.UserID]; ok {
			author = u.PublicView(online[u.ID])
		}
		var call *CallLogView
		if m.CallSessionID != nil {
			if c, ok := calls[*m.CallSessionID]; ok {
				call = callLogView(c)
			}
		}
		out[i] = MessageView{
			ID: m.ID, Content: m.Content, EditedAt: core.TimePtr(m.EditedAt), CreatedAt: core.Time(m.CreatedAt),
			ParentMessageID: m.ParentMessageID, ClientID: m.ClientID, MessageType: m.Type.String(), CallSession: call, User: author, Reactions: rs,
		}
	}
	return out, nil
}

// callSummaries reads the calls from the call store, by id; it asks
// nothing when there are none.
func (s *Service) callSummaries(ctx context.Context, ids []int64) (map[int64]*CallSummary, error) {
	calls := make(map[int64]*CallSummary, len(ids))
	if len(ids) == 0 {
		return calls, nil
	}
	cs, err := s.calls.CallSummaries(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		calls[cs[i].ID] = &cs[i]
	}
	return calls, nil
}

// people loads the distinct users named by ids, and who of them is online.
// Users in known are taken as they are instead of read again.
func (s *Service) people(ctx context.Context, ids func(yield func(int64)), known ...users.User) (map[int64]users.User, map[int64]bool, error) {
	var distinct, missing []int64
	byID := map[int64]users.User{}
	for _, u := range known {
		byID[u.ID] = u
	}
	seen := map[int64]bool{}
	ids(func(id int64) {
		if !seen[id] {
			seen[id] = true
			distinct = append(distinct, id)
			if _, ok := byID[id]; !ok {
				missing = append(missing, id)
			}
		}
	})
	if len(missing) > 0 {
		us, err := s.users.GetMany(ctx, missing)
		if err != nil {
			return nil, nil, err
		}
		for _, u := range us {
			byID[u.ID] = u
		}
	}
	return byID, s.online(ctx, distinct), nil
}

// online reads presence. It is cosmetic, so a presence outage shows users
// offline rather than failing the request.
func (s *Service) online(ctx context.Context, ids []int64) map[int64]bool {
	if len(ids) == 0 || s.pres == nil {
		return map[int64]bool{}
	}
	m, err := s.pres.Online(ctx, ids)
	if err != nil {
		s.log.WarnContext(ctx, "presence lookup failed; showing users offline", "err", err)
		return map[int64]bool{}
	}
	return m
}
