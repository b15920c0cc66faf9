package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// ChatStore keeps conversations, memberships, messages and reactions in
// maps. Its orderings, conflicts and cascades behave as postgres.ChatStore's
// do; both pass chattest.RunStore. Times are kept to the microsecond, as
// PostgreSQL keeps them, so that ties and cursors fall the same way.
//
// Transactions are serial: InTx holds the store for as long as its
// function runs, and calls outside it wait. The function must therefore
// use the store it is given; calling the outer store from it waits forever.
type ChatStore struct {
	// mu is held by each call outside a transaction and by InTx throughout.
	mu   sync.Mutex
	data *chatData
	// tx is set on the store that InTx hands to its function.
	tx *chatTx
}

var _ chat.Store = (*ChatStore)(nil)

// chatData is what a ChatStore holds. Every change goes through setUndoable
// or deleteUndoable, which log how to undo it while a transaction runs.
type chatData struct {
	conversations map[int64]chat.Conversation
	directKeys    map[string]int64
	members       map[memberKey]chat.Membership
	messages      map[int64]chat.Message
	reactions     map[int64]chat.Reaction
	reactionKeys  map[reactionKey]int64
	// clientIDs are the keys of idempotent sends, as message_client_ids.
	clientIDs map[clientKey]clientEntry
	// keyedSends counts the sends that took a key since the last sweep of
	// expired ones.
	keyedSends int

	// IDs are never rolled back, as sequences are not, so an id seen in a
	// rolled-back transaction never names something else later.
	lastConversationID, lastMessageID, lastReactionID int64

	// undo is not nil while a transaction runs.
	undo *[]func()
}

type memberKey struct{ conversationID, userID int64 }

type clientKey struct {
	userID   int64
	clientID string
}

type clientEntry struct {
	conversationID, messageID int64
	// at is when the key was taken, by the caller's clock (the message's
	// CreatedAt), as PostgreSQL reads it.
	at time.Time
}

// sweepEvery is how many keyed sends go between sweeps of expired keys:
// a sweep reads every key, so that amortizes it to a constant per send.
const sweepEvery = 1000

type reactionKey struct {
	messageID, userID int64
	emoji             string
}

// chatTx is the state of one InTx.
type chatTx struct {
	// mu lets fn share its store between goroutines, as a connection would
	// not; done makes the store unusable once InTx returns.
	mu   sync.Mutex
	done bool
}

// NewChatStore returns an empty ChatStore.
func NewChatStore() *ChatStore {
	return &ChatStore{data: &chatData{
		conversations: make(map[int64]chat.Conversation),
		directKeys:    make(map[string]int64),
		members:       make(map[memberKey]chat.Membership),
		messages:      make(map[int64]chat.Message),
		reactions:     make(map[int64]chat.Reaction),
		reactionKeys:  make(map[reactionKey]int64),
		clientIDs:     make(map[clientKey]clientEntry),
	}}
}

// acquire returns the data to work on and the function that releases it.
func (s *ChatStore) acquire() (*chatData, func(), error) {
	if s.tx == nil {
		s.mu.Lock()
		return s.data, s.mu.Unlock, nil
	}
	s.tx.mu.Lock()
	if s.tx.done {
		s.tx.mu.Unlock()
		return nil, nil, core.E(core.Internal, "transaction already ended")
	}
	return s.data, s.tx.mu.Unlock, nil
}

// setUndoable sets m[k] to v, logging how to undo it while a transaction runs.
func setUndoable[K comparable, V any](d *chatData, m map[K]V, k K, v V) {
	if d.undo != nil {
		old, had := m[k]
		*d.undo = append(*d.undo, func() {
			if had {
				m[k] = old
			} else {
				delete(m, k)
			}
		})
	}
	m[k] = v
}

// deleteUndoable deletes m[k], logging how to undo it while a transaction runs.
func deleteUndoable[K comparable, V any](d *chatData, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	if d.undo != nil {
		*d.undo = append(*d.undo, func() { m[k] = old })
	}
	delete(m, k)
}

// InTx runs fn with a store whose changes are undone, in reverse order,
// when fn returns an error or panics. On a store already in a transaction
// it runs fn with that store.
func (s *ChatStore) InTx(_ context.Context, fn func(tx chat.Store) error) (err error) {
	if s.tx != nil {
		return fn(s)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var undo []func()
	s.data.undo = &undo
	tx := &ChatStore{data: s.data, tx: &chatTx{}}
	committed := false
	defer func() {
		tx.tx.mu.Lock()
		tx.tx.done = true
		tx.tx.mu.Unlock()
		s.data.undo = nil
		if !committed {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	return nil
}

// CreateConversation stores c and its members. Conflict when c.DirectKey is
// taken, or when members name a user twice.
func (s *ChatStore) CreateConversation(_ context.Context, c chat.Conversation, members []chat.Membership) (chat.Conversation, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Conversation{}, err
	}
	defer release()
	if c.DirectKey != nil {
		if _, taken := d.directKeys[*c.DirectKey]; taken {
			return chat.Conversation{}, core.E(core.Conflict, "Already exists")
		}
	}
	seen := make(map[int64]bool, len(members))
	for _, m := range members {
		if seen[m.UserID] {
			return chat.Conversation{}, core.E(core.Conflict, "Already exists")
		}
		seen[m.UserID] = true
	}
	d.lastConversationID++
	c.ID = d.lastConversationID
	c = storedConversation(c)
	setUndoable(d, d.conversations, c.ID, c)
	if c.DirectKey != nil {
		setUndoable(d, d.directKeys, *c.DirectKey, c.ID)
	}
	for _, m := range members {
		m.ConversationID = c.ID
		m.CreatedAt = chatTime(m.CreatedAt)
		setUndoable(d, d.members, memberKey{c.ID, m.UserID}, m)
	}
	return storedConversation(c), nil
}

// GetConversation returns the conversation. NotFound when there is none.
func (s *ChatStore) GetConversation(_ context.Context, id int64) (chat.Conversation, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Conversation{}, err
	}
	defer release()
	c, ok := d.conversations[id]
	if !ok {
		return chat.Conversation{}, core.E(core.NotFound, "Not found")
	}
	return storedConversation(c), nil
}

// LockConversation is GetConversation: transactions are serial already.
func (s *ChatStore) LockConversation(ctx context.Context, id int64) (chat.Conversation, error) {
	return s.GetConversation(ctx, id)
}

// GetDirect returns the DM with the direct key. NotFound when there is none.
func (s *ChatStore) GetDirect(_ context.Context, directKey string) (chat.Conversation, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Conversation{}, err
	}
	defer release()
	id, ok := d.directKeys[directKey]
	if !ok {
		return chat.Conversation{}, core.E(core.NotFound, "Not found")
	}
	return storedConversation(d.conversations[id]), nil
}

// ListConversations returns userID's conversations, most recently active
// first: by LastMessageAt (or CreatedAt) descending, then ID descending.
func (s *ChatStore) ListConversations(_ context.Context, userID int64, unreadLimit int) ([]chat.MemberConversation, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	out := []chat.MemberConversation{}
	for k, m := range d.members {
		if k.userID == userID {
			out = append(out, chat.MemberConversation{
				Conversation: storedConversation(d.conversations[k.conversationID]),
				LastRead:     chatCopy(m.LastRead),
				Unread:       unreadCount(d, m, unreadLimit),
			})
		}
	}
	active := func(c chat.Conversation) time.Time {
		if c.LastMessageAt != nil {
			return *c.LastMessageAt
		}
		return c.CreatedAt
	}
	slices.SortFunc(out, func(a, b chat.MemberConversation) int {
		return cmp.Or(active(b.Conversation).Compare(active(a.Conversation)), cmp.Compare(b.ID, a.ID))
	})
	return out, nil
}

// UnreadCount counts m's unread messages up to limit; see chat.Store.
func (s *ChatStore) UnreadCount(_ context.Context, m chat.Membership, limit int) (int, error) {
	d, release, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	return unreadCount(d, m, limit), nil
}

// unreadCount reads every message: the fake trades the index for brevity.
func unreadCount(d *chatData, m chat.Membership, limit int) int {
	from := chat.Cursor{CreatedAt: m.CreatedAt}
	if m.LastRead != nil {
		from = *m.LastRead
	}
	n := 0
	for _, msg := range d.messages {
		if n < limit && msg.ConversationID == m.ConversationID && msg.DeletedAt == nil && msg.UserID != m.UserID &&
			from.Before(chat.Cursor{CreatedAt: msg.CreatedAt, ID: msg.ID}) {
			n++
		}
	}
	return n
}

// MarkRead moves the marker forward to at; see chat.Store.
func (s *ChatStore) MarkRead(_ context.Context, conversationID, userID int64, at chat.Cursor) (chat.Membership, bool, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Membership{}, false, err
	}
	defer release()
	k := memberKey{conversationID, userID}
	m, ok := d.members[k]
	if !ok {
		return chat.Membership{}, false, core.E(core.NotFound, "Not found")
	}
	if !markRead(d, k, at) {
		return m, false, nil
	}
	return d.members[k], true, nil
}

// markRead moves member k's marker forward to at, and reports whether it moved.
func markRead(d *chatData, k memberKey, at chat.Cursor) bool {
	m, ok := d.members[k]
	if !ok || (m.LastRead != nil && !m.LastRead.Before(at)) {
		return false
	}
	at.CreatedAt = chatTime(at.CreatedAt)
	m.LastRead = &at
	setUndoable(d, d.members, k, m)
	return true
}

// DeleteConversation deletes the conversation with its memberships,
// messages and their reactions; its calls go too, as a CallStore keeps no
// call of a deleted conversation. NotFound when there is none.
func (s *ChatStore) DeleteConversation(_ context.Context, id int64) error {
	d, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	c, ok := d.conversations[id]
	if !ok {
		return core.E(core.NotFound, "Not found")
	}
	deleteUndoable(d, d.conversations, id)
	if c.DirectKey != nil {
		deleteUndoable(d, d.directKeys, *c.DirectKey)
	}
	for k := range d.members {
		if k.conversationID == id {
			deleteUndoable(d, d.members, k)
		}
	}
	for mid, m := range d.messages {
		if m.ConversationID != id {
			continue
		}
		for rid, r := range d.reactions {
			if r.MessageID == mid {
				deleteUndoable(d, d.reactionKeys, reactionKey{r.MessageID, r.UserID, r.Emoji})
				deleteUndoable(d, d.reactions, rid)
			}
		}
		deleteUndoable(d, d.messages, mid)
	}
	for k, e := range d.clientIDs {
		if e.conversationID == id {
			deleteUndoable(d, d.clientIDs, k)
		}
	}
	return nil
}

// GetMembership returns userID's membership of the conversation. NotFound
// when userID is not a member.
func (s *ChatStore) GetMembership(_ context.Context, conversationID, userID int64) (chat.Membership, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Membership{}, err
	}
	defer release()
	m, ok := d.members[memberKey{conversationID, userID}]
	if !ok {
		return chat.Membership{}, core.E(core.NotFound, "Not found")
	}
	return m, nil
}

// ListMemberships returns the memberships of the conversations, ordered by
// conversation id, then CreatedAt, then user id.
func (s *ChatStore) ListMemberships(_ context.Context, conversationIDs []int64) ([]chat.Membership, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	wanted := chatIDSet(conversationIDs)
	out := []chat.Membership{}
	for k, m := range d.members {
		if wanted[k.conversationID] {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b chat.Membership) int {
		return cmp.Or(cmp.Compare(a.ConversationID, b.ConversationID), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.UserID, b.UserID))
	})
	return out, nil
}

// AddMembership stores m. Conflict when the user is already a member;
// NotFound when the conversation does not exist.
func (s *ChatStore) AddMembership(_ context.Context, m chat.Membership) error {
	d, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if _, ok := d.conversations[m.ConversationID]; !ok {
		return core.E(core.NotFound, "Not found")
	}
	k := memberKey{m.ConversationID, m.UserID}
	if _, ok := d.members[k]; ok {
		return core.E(core.Conflict, "Already exists")
	}
	m.CreatedAt = chatTime(m.CreatedAt)
	m.LastRead = nil // a new member has marked nothing
	setUndoable(d, d.members, k, m)
	return nil
}

// RemoveMembership deletes the membership. NotFound when there is none.
func (s *ChatStore) RemoveMembership(_ context.Context, conversationID, userID int64) error {
	d, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	k := memberKey{conversationID, userID}
	if _, ok := d.members[k]; !ok {
		return core.E(core.NotFound, "Not found")
	}
	deleteUndoable(d, d.members, k)
	return nil
}

// SetRole gives userID the role in the conversation. NotFound when userID
// is not a member. Memberships keep no update time, so at is not kept.
func (s *ChatStore) SetRole(_ context.Context, conversationID, userID int64, role chat.Role, _ time.Time) error {
	d, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	k := memberKey{conversationID, userID}
	m, ok := d.members[k]
	if !ok {
		return core.E(core.NotFound, "Not found")
	}
	m.Role = role
	setUndoable(d, d.members, k, m)
	return nil
}

// CreateMessage stores m, without its ClientID, and moves its
// conversation's LastMessageAt forward to m.CreatedAt, never back.
// NotFound when the conversation does not exist.
func (s *ChatStore) CreateMessage(_ context.Context, m chat.Message) (chat.Message, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Message{}, err
	}
	defer release()
	m.ClientID = nil
	return createMessage(d, m)
}

// PostMessage is CreateMessage while the author is a member of the
// conversation, and NotFound otherwise. A ClientID the author took less
// than chat.ClientIDWindow before m.CreatedAt returns the message it
// names, created false, or Conflict when that is of another conversation;
// the store's lock makes concurrent sends of one key take turns.
func (s *ChatStore) PostMessage(_ context.Context, m chat.Message) (chat.Message, bool, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Message{}, false, err
	}
	defer release()
	if _, ok := d.members[memberKey{m.ConversationID, m.UserID}]; !ok {
		return chat.Message{}, false, core.E(core.NotFound, "Not found")
	}
	if m.ClientID == nil {
		stored, err := createMessage(d, m)
		if err == nil {
			markRead(d, memberKey{m.ConversationID, m.UserID}, chat.Cursor{CreatedAt: stored.CreatedAt, ID: stored.ID})
		}
		return stored, err == nil, err
	}
	k := clientKey{m.UserID, *m.ClientID}
	if e, ok := d.clientIDs[k]; ok && chatTime(m.CreatedAt).Sub(e.at) < chat.ClientIDWindow {
		if e.conversationID != m.ConversationID {
			return chat.Message{}, false, core.E(core.Conflict, "Client id already used for another conversation")
		}
		orig, ok := d.messages[e.messageID]
		if !ok {
			return chat.Message{}, false, core.E(core.NotFound, "Not found")
		}
		return storedMessage(orig), false, nil
	}
	stored, err := createMessage(d, m)
	if err != nil {
		return chat.Message{}, false, err
	}
	d.keyedSends++
	if d.keyedSends >= sweepEvery {
		d.keyedSends = 0
		for k, e := range d.clientIDs {
			if stored.CreatedAt.Sub(e.at) >= chat.ClientIDWindow {
				deleteUndoable(d, d.clientIDs, k)
			}
		}
	}
	setUndoable(d, d.clientIDs, k, clientEntry{conversationID: stored.ConversationID, messageID: stored.ID, at: stored.CreatedAt})
	markRead(d, memberKey{m.ConversationID, m.UserID}, chat.Cursor{CreatedAt: stored.CreatedAt, ID: stored.ID})
	return stored, true, nil
}

func createMessage(d *chatData, m chat.Message) (chat.Message, error) {
	c, ok := d.conversations[m.ConversationID]
	if !ok {
		return chat.Message{}, core.E(core.NotFound, "Not found")
	}
	d.lastMessageID++
	m.ID = d.lastMessageID
	// As the database does: no edit or deletion yet, and one time for both.
	m.EditedAt, m.DeletedAt = nil, nil
	m.UpdatedAt = m.CreatedAt
	m = storedMessage(m)
	setUndoable(d, d.messages, m.ID, m)
	if c.LastMessageAt == nil || c.LastMessageAt.Before(m.CreatedAt) {
		at := m.CreatedAt
		c.LastMessageAt = &at
		setUndoable(d, d.conversations, c.ID, c)
	}
	return storedMessage(m), nil
}

// GetMessage returns message id, deleted or not. NotFound when there is
// none, or when conversationID is not 0 and the message is in another
// conversation.
func (s *ChatStore) GetMessage(_ context.Context, conversationID, id int64) (chat.Message, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Message{}, err
	}
	defer release()
	m, ok := d.messages[id]
	if !ok || (conversationID != 0 && m.ConversationID != conversationID) {
		return chat.Message{}, core.E(core.NotFound, "Not found")
	}
	return storedMessage(m), nil
}

// LockMessage is GetMessage: transactions are serial already.
func (s *ChatStore) LockMessage(ctx context.Context, conversationID, id int64) (chat.Message, error) {
	return s.GetMessage(ctx, conversationID, id)
}

// UpdateMessage writes m's Content, EditedAt, DeletedAt and UpdatedAt to
// message m.ID created at m.CreatedAt. NotFound when there is none.
func (s *ChatStore) UpdateMessage(_ context.Context, m chat.Message) (chat.Message, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Message{}, err
	}
	defer release()
	stored, ok := d.messages[m.ID]
	if !ok || !stored.CreatedAt.Equal(chatTime(m.CreatedAt)) || stored.DeletedAt != nil {
		return chat.Message{}, core.E(core.NotFound, "Not found")
	}
	stored.Content = m.Content
	stored.EditedAt = m.EditedAt
	stored.DeletedAt = m.DeletedAt
	stored.UpdatedAt = m.UpdatedAt
	stored = storedMessage(stored)
	setUndoable(d, d.messages, stored.ID, stored)
	return storedMessage(stored), nil
}

// History returns up to limit of the conversation's messages that are not
// deleted, newest first by (CreatedAt, ID), strictly older than before when
// it is not nil.
func (s *ChatStore) History(_ context.Context, conversationID int64, before *chat.Cursor, limit int) ([]chat.Message, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	newer := func(a, b chat.Message) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	}
	var cursor chat.Message
	if before != nil {
		cursor = chat.Message{ID: before.ID, CreatedAt: chatTime(before.CreatedAt)}
	}
	out := []chat.Message{}
	for _, m := range d.messages {
		if m.ConversationID == conversationID && m.DeletedAt == nil && (before == nil || newer(cursor, m) < 0) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, newer)
	out = out[:min(len(out), max(limit, 0))]
	for i, m := range out {
		out[i] = storedMessage(m)
	}
	return out, nil
}

// HistoryAfter returns up to limit of the conversation's messages that are
// not deleted, oldest first by (CreatedAt, ID), strictly newer than after.
func (s *ChatStore) HistoryAfter(_ context.Context, conversationID int64, after chat.Cursor, limit int) ([]chat.Message, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	older := func(a, b chat.Message) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	}
	cursor := chat.Message{ID: after.ID, CreatedAt: chatTime(after.CreatedAt)}
	out := []chat.Message{}
	for _, m := range d.messages {
		if m.ConversationID == conversationID && m.DeletedAt == nil && older(cursor, m) < 0 {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, older)
	out = out[:min(len(out), max(limit, 0))]
	for i, m := range out {
		out[i] = storedMessage(m)
	}
	return out, nil
}

// CreateReaction stores r. Conflict when the user already reacted to the
// message with the emoji; NotFound when the message (r.MessageID,
// r.MessageCreatedAt) does not exist.
func (s *ChatStore) CreateReaction(_ context.Context, r chat.Reaction) (chat.Reaction, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Reaction{}, err
	}
	defer release()
	r.MessageCreatedAt = chatTime(r.MessageCreatedAt)
	r.CreatedAt = chatTime(r.CreatedAt)
	if m, ok := d.messages[r.MessageID]; !ok || !m.CreatedAt.Equal(r.MessageCreatedAt) {
		return chat.Reaction{}, core.E(core.NotFound, "Not found")
	}
	k := reactionKey{r.MessageID, r.UserID, r.Emoji}
	if _, ok := d.reactionKeys[k]; ok {
		return chat.Reaction{}, core.E(core.Conflict, "Already exists")
	}
	d.lastReactionID++
	r.ID = d.lastReactionID
	setUndoable(d, d.reactions, r.ID, r)
	setUndoable(d, d.reactionKeys, k, r.ID)
	return r, nil
}

// GetReaction returns the reaction. NotFound when there is none.
func (s *ChatStore) GetReaction(_ context.Context, id int64) (chat.Reaction, error) {
	d, release, err := s.acquire()
	if err != nil {
		return chat.Reaction{}, err
	}
	defer release()
	r, ok := d.reactions[id]
	if !ok {
		return chat.Reaction{}, core.E(core.NotFound, "Not found")
	}
	return r, nil
}

// DeleteReaction deletes the reaction. NotFound when there is none.
func (s *ChatStore) DeleteReaction(_ context.Context, id int64) error {
	d, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	r, ok := d.reactions[id]
	if !ok {
		return core.E(core.NotFound, "Not found")
	}
	deleteUndoable(d, d.reactionKeys, reactionKey{r.MessageID, r.UserID, r.Emoji})
	deleteUndoable(d, d.reactions, id)
	return nil
}

// ListReactions returns the reactions to the messages, ordered by ID.
func (s *ChatStore) ListReactions(_ context.Context, messageIDs []int64) ([]chat.Reaction, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	wanted := chatIDSet(messageIDs)
	out := []chat.Reaction{}
	for _, r := range d.reactions {
		if wanted[r.MessageID] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b chat.Reaction) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// ContactIDs returns the distinct ids of the users who share at least one
// conversation with userID, userID excluded, in ascending order.
func (s *ChatStore) ContactIDs(_ context.Context, userID int64) ([]int64, error) {
	d, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	shared := make(map[int64]bool)
	for k := range d.members {
		if k.userID == userID {
			shared[k.conversationID] = true
		}
	}
	contacts := make(map[int64]bool)
	for k := range d.members {
		if shared[k.conversationID] && k.userID != userID {
			contacts[k.userID] = true
		}
	}
	out := make([]int64, 0, len(contacts))
	for id := range contacts {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// storedConversation copies c with its times in UTC to the microsecond
// and no pointer shared with c, so that neither the caller nor the store
// can change what the other holds.
func storedConversation(c chat.Conversation) chat.Conversation {
	c.Name = chatCopy(c.Name)
	c.Description = chatCopy(c.Description)
	c.DirectKey = chatCopy(c.DirectKey)
	c.LastMessageAt = chatTimePtr(c.LastMessageAt)
	c.CreatedAt = chatTime(c.CreatedAt)
	c.UpdatedAt = chatTime(c.UpdatedAt)
	return c
}

// storedMessage is storedConversation for messages.
func storedMessage(m chat.Message) chat.Message {
	m.ParentMessageID = chatCopy(m.ParentMessageID)
	m.CallSessionID = chatCopy(m.CallSessionID)
	m.ClientID = chatCopy(m.ClientID)
	m.EditedAt = chatTimePtr(m.EditedAt)
	m.DeletedAt = chatTimePtr(m.DeletedAt)
	m.CreatedAt = chatTime(m.CreatedAt)
	m.UpdatedAt = chatTime(m.UpdatedAt)
	return m
}

// chatTime is t as PostgreSQL stores and returns it: UTC, microseconds.
func chatTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func chatTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := chatTime(*t)
	return &u
}

func chatIDSet(ids []int64) map[int64]bool {
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

func chatCopy[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
