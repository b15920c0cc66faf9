package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// Limits of the contract.
const (
	MaxName         = 100
	MaxDescription  = 1000
	MaxContent      = 4000
	MaxEmoji        = 10
	MaxMemberIDs    = 1000
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// Users is what chat needs of the user store.
type Users interface {
	Get(ctx context.Context, id int64) (users.User, error)
	GetMany(ctx context.Context, ids []int64) ([]users.User, error)
}

// Introducer is told when users become contacts, so that presence can
// announce them to each other; presence.Service satisfies it.
type Introducer interface {
	Introduce(ctx context.Context, newcomers, existing []int64)
}

// Deps are the Service's collaborators. Introducer is optional.
type Deps struct {
	Store      Store
	Users      Users
	Presence   users.OnlineChecker
	Publisher  Publisher
	Introducer Introducer
	Now        func() time.Time
	Log        *slog.Logger
}

// Service runs the chat use cases on behalf of an acting user.
type Service struct {
	store Store
	users Users
	pres  users.OnlineChecker
	pub   Publisher
	intro Introducer
	now   func() time.Time
	log   *slog.Logger
}

// NewService returns a Service.
func NewService(d Deps) *Service {
	s := &Service{store: d.Store, users: d.Users, pres: d.Presence, pub: d.Publisher, intro: d.Introducer, now: d.Now, log: d.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// ConversationStream and UserStream name the streams events go to.
func ConversationStream(id int64) string { return "conversation_" + strconv.FormatInt(id, 10) }

// UserStream names a user's personal stream.
func UserStream(id int64) string { return "user_" + strconv.FormatInt(id, 10) }

// DirectKey is the key that makes a DM unique per pair of users.
func DirectKey(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return strconv.FormatInt(a, 10) + ":" + strconv.FormatInt(b, 10)
}

// clock returns the time to stamp, at the database's microsecond precision
// so that what the memory store and PostgreSQL return agree.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

var (
	errNotFound  = core.E(core.NotFound, "Not found")
	errForbidden = core.E(core.Forbidden, "Not authorized")
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

// ConversationInput is what a client submits to create a conversation.
type ConversationInput struct {
	Type        string // "direct", "group" or "channel"; "" means group
	Name        *string
	Description *string
	MemberIDs   []int64
}

// ListConversations returns the actor's conversations, most recently active first.
func (s *Service) ListConversations(ctx context.Context, actorID int64) ([]ConversationView, error) {
	convs, err := s.store.ListConversations(ctx, actorID)
	if err != nil {
		return nil, err
	}
	return s.renderConversations(ctx, convs)
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
			views, err := s.renderConversations(ctx, []Conversation{existing})
			if err != nil {
				return v, false, err
			}
			return views[0], false, nil
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
		views, err := s.renderConversations(ctx, []Conversation{existing})
		if err != nil {
			return v, false, err
		}
		return views[0], false, nil
	}
	if err != nil {
		return v, false, err
	}
	views, err := s.renderConversations(ctx, []Conversation{stored})
	if err != nil {
		return v, false, err
	}
	v = views[0]
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
	if _, err := s.store.GetMembership(ctx, id, actorID); core.Is(err, core.NotFound) {
		return ConversationView{}, errForbidden
	} else if err != nil {
		return ConversationView{}, err
	}
	views, err := s.renderConversations(ctx, []Conversation{c})
	if err != nil {
		return ConversationView{}, err
	}
	return views[0], nil
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
		var err error
		if c, err = tx.LockConversation(ctx, convID); core.Is(err, core.NotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		actor, err := memberIn(ctx, tx, convID, actorID)
		if err != nil {
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
	views, err := s.renderConversations(ctx, []Conversation{c})
	if err != nil {
		s.log.WarnContext(ctx, "rendering a conversation for its new member failed", "conversation_id", convID, "err", err)
		return nil
	}
	s.publish(ctx, UserStream(userID), s.render(newConversationEvent{Type: "new_conversation", Conversation: views[0]}))
	if s.intro != nil {
		var existing []int64
		for _, m := range views[0].Members {
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
		c, err := tx.LockConversation(ctx, convID)
		if core.Is(err, core.NotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		actor, err := memberIn(ctx, tx, convID, actorID)
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

// History returns the page of messages strictly older than the message
// cursor (or the newest page when cursor is 0), oldest first. limit is
// clamped into 1..MaxPageSize; 0 means the default.
func (s *Service) History(ctx context.Context, actorID, convID, cursor int64, limit int, limitGiven bool) (Page, error) {
	if _, err := s.member(ctx, convID, actorID); err != nil {
		return Page{}, err
	}
	switch {
	case !limitGiven:
		limit = DefaultPageSize
	case limit < 1:
		limit = 1
	case limit > MaxPageSize:
		limit = MaxPageSize
	}
	var before *Cursor
	if cursor != 0 {
		m, err := s.store.GetMessage(ctx, convID, cursor)
		if core.Is(err, core.NotFound) {
			return Page{}, core.InvalidDetails("Cursor is not a message of this conversation")
		} else if err != nil {
			return Page{}, err
		}
		before = &Cursor{CreatedAt: m.CreatedAt, ID: m.ID}
	}
	msgs, err := s.store.History(ctx, convID, before, limit)
	if err != nil {
		return Page{}, err
	}
	slices.Reverse(msgs)
	views, err := s.renderMessages(ctx, s.store, msgs, true)
	if err != nil {
		return Page{}, err
	}
	p := Page{Messages: views}
	if len(msgs) == limit {
		p.NextCursor = &msgs[0].ID
	}
	return p, nil
}

// MessageInput is what a client submits to send a message.
type MessageInput struct {
	Content         string
	Type            string // "text" (default), "image" or "file"
	ParentMessageID *int64
}

// SendMessage stores a message from a member and publishes new_message.
// actor is the user the request authenticated; the message is rendered
// with it rather than with a second read of the same row.
func (s *Service) SendMessage(ctx context.Context, actor users.User, convID int64, in MessageInput) (MessageView, error) {
	problems := validateContent(in.Content)
	typ := Text
	switch in.Type {
	case "", "text":
	case "image":
		typ = Image
	case "file":
		typ = File
	case "call":
		problems = append(problems, "Message type call is reserved for call logs")
	default:
		problems = append(problems, "Message type is not included in the list")
	}
	// A valid message without a parent checks membership in the insert
	// itself (PostMessage): one round trip fewer on the hottest write. The
	// other paths ask first, so that a stranger learns nothing but 404,
	// whatever the body.
	if len(problems) > 0 || in.ParentMessageID != nil {
		if _, err := s.member(ctx, convID, actor.ID); err != nil {
			return MessageView{}, err
		}
	}
	if in.ParentMessageID != nil {
		if _, err := s.store.GetMessage(ctx, convID, *in.ParentMessageID); core.Is(err, core.NotFound) {
			problems = append(problems, "Parent message must belong to this conversation")
		} else if err != nil {
			return MessageView{}, err
		}
	}
	if len(problems) > 0 {
		return MessageView{}, core.InvalidDetails(problems...)
	}
	now := s.clock()
	m, err := s.store.PostMessage(ctx, Message{
		ConversationID: convID, UserID: actor.ID, Content: in.Content, Type: typ,
		ParentMessageID: in.ParentMessageID, CreatedAt: now, UpdatedAt: now,
	})
	if core.Is(err, core.NotFound) {
		return MessageView{}, errNotFound
	}
	if err != nil {
		return MessageView{}, err
	}
	return s.publishMessage(ctx, "new_message", m, false, actor)
}

func validateContent(content string) []string {
	switch {
	case strings.TrimSpace(content) == "":
		return []string{"Content can't be blank"}
	case utf8.RuneCountInString(content) > MaxContent:
		return []string{fmt.Sprintf("Content is too long (maximum is %d characters)", MaxContent)}
	}
	return nil
}

// liveMessage returns a message of the conversation that is not deleted.
func (s *Service) liveMessage(ctx context.Context, convID, id int64) (Message, error) {
	m, err := s.store.GetMessage(ctx, convID, id)
	if core.Is(err, core.NotFound) || (err == nil && m.DeletedAt != nil) {
		return Message{}, errNotFound
	}
	return m, err
}

// EditMessage changes a message's content; its author only. actor is the
// user the request authenticated, who renders as the author.
//
// Edits of one message are stored one at a time, on the locked row, and
// each publishes message_edited before its transaction commits, that is
// before the next edit can read the row: the events of one message leave
// in the order the edits were stored, and the broker keeps that order on
// every instance, so a subscriber's last message_edited is the stored
// text. If the commit itself then fails, the edit answers an error after
// its event went out; the message's next event or a reload corrects it.
func (s *Service) EditMessage(ctx context.Context, actor users.User, convID, id int64, content string) (MessageView, error) {
	if _, err := s.member(ctx, convID, actor.ID); err != nil {
		return MessageView{}, err
	}
	var v MessageView
	err := s.store.InTx(ctx, func(tx Store) error {
		m, err := tx.LockMessage(ctx, convID, id)
		if core.Is(err, core.NotFound) || (err == nil && m.DeletedAt != nil) {
			return errNotFound
		} else if err != nil {
			return err
		}
		if !canEditMessage(&m, actor.ID) {
			return errForbidden
		}
		if problems := validateContent(content); len(problems) > 0 {
			return core.InvalidDetails(problems...)
		}
		now := s.clock()
		m.Content, m.EditedAt, m.UpdatedAt = content, &now, now
		if m, err = tx.UpdateMessage(ctx, m); err != nil {
			return err
		}
		views, err := s.renderMessages(ctx, tx, []Message{m}, true, actor)
		if err != nil {
			return err
		}
		v = views[0]
		s.publish(ctx, ConversationStream(convID), s.render(messageEvent{Type: "message_edited", Message: v}))
		return nil
	})
	if err != nil {
		return MessageView{}, err
	}
	return v, nil
}

// DeleteMessage soft-deletes a message; its author or a conversation admin.
func (s *Service) DeleteMessage(ctx context.Context, actorID, convID, id int64) error {
	actor, err := s.member(ctx, convID, actorID)
	if err != nil {
		return err
	}
	m, err := s.liveMessage(ctx, convID, id)
	if err != nil {
		return err
	}
	if !canDeleteMessage(&m, &actor) {
		return errForbidden
	}
	now := s.clock()
	m.DeletedAt, m.UpdatedAt = &now, now
	if _, err := s.store.UpdateMessage(ctx, m); err != nil {
		return err
	}
	s.publish(ctx, ConversationStream(convID), s.render(messageDeletedEvent{Type: "message_deleted", MessageID: id}))
	return nil
}

// A message just created has no reactions: not asking saves a round trip on
// the busiest path.
func (s *Service) publishMessage(ctx context.Context, event string, m Message, hasReactions bool, known ...users.User) (MessageView, error) {
	views, err := s.renderMessages(ctx, s.store, []Message{m}, hasReactions, known...)
	if err != nil {
		return MessageView{}, err
	}
	s.publish(ctx, ConversationStream(m.ConversationID), s.render(messageEvent{Type: event, Message: views[0]}))
	return views[0], nil
}

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
	switch {
	case strings.TrimSpace(emoji) == "":
		return ReactionView{}, core.InvalidDetails("Emoji can't be blank")
	case utf8.RuneCountInString(emoji) > MaxEmoji:
		return ReactionView{}, core.InvalidDetails(fmt.Sprintf("Emoji is too long (maximum is %d characters)", MaxEmoji))
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

// CanSubscribe allows a user to receive a conversation's events: members
// only. NotFound for anyone else, as for the nested REST routes.
func (s *Service) CanSubscribe(ctx context.Context, userID, convID int64) error {
	_, err := s.member(ctx, convID, userID)
	return err
}

type typingEvent struct {
	Type        string  `json:"type"`
	UserID      int64   `json:"user_id"`
	DisplayName *string `json:"display_name,omitempty"`
}

// Typing tells a conversation that u started or stopped typing. The caller
// holds u's live subscription to the conversation, which CanSubscribe
// allowed, so membership is not checked again for every keystroke burst.
func (s *Service) Typing(ctx context.Context, u *users.User, convID int64, started bool) {
	ev := typingEvent{Type: "typing_stop", UserID: u.ID}
	if started {
		name := u.Name()
		ev.Type, ev.DisplayName = "typing_start", &name
	}
	s.publish(ctx, ConversationStream(convID), s.render(ev))
}

// renderConversations renders conversations with their members in a fixed
// number of round trips: memberships, users, presence.
func (s *Service) renderConversations(ctx context.Context, convs []Conversation) ([]ConversationView, error) {
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
	}
	return out, nil
}

// renderMessages renders messages with authors, reactions and call
// summaries in a fixed number of round trips whatever their number. st is
// the store to read, a transaction's inside one.
func (s *Service) renderMessages(ctx context.Context, st Store, msgs []Message, withReactions bool, known ...users.User) ([]MessageView, error) {
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
	calls := map[int64]*CallSummary{}
	if len(callIDs) > 0 {
		cs, err := st.CallSummaries(ctx, callIDs)
		if err != nil {
			return nil, err
		}
		for i := range cs {
			calls[cs[i].ID] = &cs[i]
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
			ParentMessageID: m.ParentMessageID, MessageType: m.Type.String(), CallSession: call, User: author, Reactions: rs,
		}
	}
	return out, nil
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

func (s *Service) render(event any) []byte {
	b, err := json.Marshal(event)
	if err != nil {
		// The event types are plain structs; this cannot happen short of a bug.
		panic(fmt.Sprintf("chat: rendering %T: %v", event, err))
	}
	return b
}

// publish sends an event after the change is committed. A failure is
// logged, not returned: the change stands, and clients catch up over REST.
func (s *Service) publish(ctx context.Context, stream string, payload []byte) {
	// The change is committed: a client hanging up now must not cancel its event.
	if err := s.pub.Publish(context.WithoutCancel(ctx), stream, payload); err != nil {
		s.log.WarnContext(ctx, "publishing event failed", "stream", stream, "err", err)
	}
}

// Announce publishes new_message for a message stored by another use case
// in its own transaction: a call's log.
func (s *Service) Announce(ctx context.Context, m Message) {
	if _, err := s.publishMessage(ctx, "new_message", m, false); err != nil {
		s.log.WarnContext(ctx, "announcing a message failed", "message_id", m.ID, "err", err)
	}
}
