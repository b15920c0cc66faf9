package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/gen/db"
)

// codeForeignKeyViolation is the SQLSTATE of a reference to a missing row.
const codeForeignKeyViolation = "23503"

// querier is what ChatStore runs statements on: the primary pool, or the
// transaction of an InTx. Begin starts a transaction on a pool and a
// savepoint in a transaction.
type querier interface {
	db.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ChatStore keeps conversations, memberships, messages and reactions in
// their tables. Besides the kinds each method names, every method returns
// Unavailable when the database cannot be reached.
type ChatStore struct {
	db    *DB
	parts *Partitions
	conn  querier
	// inTx is set on the store that InTx hands to its function.
	inTx bool
}

var _ chat.Store = (*ChatStore)(nil)

// NewChatStore returns a ChatStore over db that creates message partitions
// through parts as messages need them.
func NewChatStore(db *DB, parts *Partitions) *ChatStore {
	return &ChatStore{db: db, parts: parts, conn: db.primary}
}

// InTx runs fn in a transaction on the primary, committed when fn returns
// nil and rolled back when it returns an error, which InTx returns as it is.
// On a store already in a transaction it runs fn with that store. fn must
// not use its store after it returns, nor from several goroutines at once.
func (s *ChatStore) InTx(ctx context.Context, fn func(tx chat.Store) error) error {
	if s.inTx {
		return fn(s)
	}
	tx, err := s.db.primary.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	// After a commit this is a no-op; after a panic or an error it rolls
	// back, even when ctx is what ended.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(&ChatStore{db: s.db, parts: s.parts, conn: tx, inTx: true}); err != nil {
		return err
	}
	return translate(tx.Commit(ctx))
}

// recoverable runs a statement whose failure the caller may handle (a
// Conflict, a NotFound) and then carry on. A failed statement aborts the
// whole transaction, so in one it runs under a savepoint.
func (s *ChatStore) recoverable(ctx context.Context, fn func(q *db.Queries) error) error {
	if !s.inTx {
		return fn(db.New(s.conn))
	}
	sp, err := s.conn.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	if err := fn(db.New(sp)); err != nil {
		_ = sp.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return translate(sp.Commit(ctx))
}

// CreateConversation stores c and its members in one statement. Conflict
// when c.DirectKey is taken; NotFound when a user does not exist.
func (s *ChatStore) CreateConversation(ctx context.Context, c chat.Conversation, members []chat.Membership) (chat.Conversation, error) {
	params := db.CreateConversationParams{
		Name:             c.Name,
		Description:      c.Description,
		ConversationType: int32(c.Type),
		CreatedByID:      c.CreatedByID,
		DirectKey:        c.DirectKey,
		LastMessageAt:    c.LastMessageAt,
		CreatedAt:        c.CreatedAt,
		UpdatedAt:        c.UpdatedAt,
		MemberUserIds:    make([]int64, len(members)),
		MemberRoles:      make([]int32, len(members)),
		MemberCreatedAts: make([]time.Time, len(members)),
	}
	for i, m := range members {
		params.MemberUserIds[i] = m.UserID
		params.MemberRoles[i] = int32(m.Role)
		params.MemberCreatedAts[i] = m.CreatedAt
	}
	var row db.CreateConversationRow
	err := s.recoverable(ctx, func(q *db.Queries) error {
		var err error
		row, err = q.CreateConversation(ctx, params)
		return translateRef(err)
	})
	if err != nil {
		return chat.Conversation{}, err
	}
	return conversationFromRow(db.Conversation(row)), nil
}

// GetConversation returns the conversation. NotFound when there is none.
func (s *ChatStore) GetConversation(ctx context.Context, id int64) (chat.Conversation, error) {
	row, err := db.New(s.conn).GetConversation(ctx, id)
	if err != nil {
		return chat.Conversation{}, translate(err)
	}
	return conversationFromRow(row), nil
}

// LockConversation returns the conversation, locked (SELECT … FOR UPDATE)
// until the transaction ends; outside one the lock ends with the statement.
// NotFound when there is none.
func (s *ChatStore) LockConversation(ctx context.Context, id int64) (chat.Conversation, error) {
	row, err := db.New(s.conn).LockConversation(ctx, id)
	if err != nil {
		return chat.Conversation{}, translate(err)
	}
	return conversationFromRow(row), nil
}

// GetDirect returns the DM with the direct key. NotFound when there is none.
func (s *ChatStore) GetDirect(ctx context.Context, directKey string) (chat.Conversation, error) {
	row, err := db.New(s.conn).GetDirect(ctx, &directKey)
	if err != nil {
		return chat.Conversation{}, translate(err)
	}
	return conversationFromRow(row), nil
}

// ListConversations returns userID's conversations, most recently active
// first, with userID's read state, in one statement (see the query).
func (s *ChatStore) ListConversations(ctx context.Context, userID int64, unreadLimit int) ([]chat.MemberConversation, error) {
	rows, err := db.New(s.conn).ListConversations(ctx, db.ListConversationsParams{UserID: userID, UnreadLimit: clampInt32(unreadLimit)})
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.MemberConversation, len(rows))
	for i, r := range rows {
		out[i] = chat.MemberConversation{
			Conversation: conversationFromRow(db.Conversation{
				ID: r.ID, Name: r.Name, Description: r.Description, ConversationType: r.ConversationType,
				CreatedByID: r.CreatedByID, DirectKey: r.DirectKey, LastMessageAt: r.LastMessageAt,
				CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			}),
			LastRead: lastRead(r.LastReadMessageID, r.LastReadMessageCreatedAt),
			Unread:   int(r.UnreadCount),
		}
	}
	return out, nil
}

// UnreadCount counts m's unread messages, up to limit, with
// ListConversations' count.
func (s *ChatStore) UnreadCount(ctx context.Context, m chat.Membership, limit int) (int, error) {
	from := chat.Cursor{CreatedAt: m.CreatedAt}
	if m.LastRead != nil {
		from = *m.LastRead
	}
	n, err := db.New(s.conn).UnreadCount(ctx, db.UnreadCountParams{
		ConversationID: m.ConversationID, AfterCreatedAt: from.CreatedAt, AfterID: from.ID,
		UserID: m.UserID, UnreadLimit: clampInt32(limit),
	})
	if err != nil {
		return 0, translate(err)
	}
	return int(n), nil
}

// MarkRead moves the marker forward in one UPDATE whose condition is the
// order; when it moves nothing, the membership is read again, in a
// statement of its own, so that a concurrent mark that won shows.
func (s *ChatStore) MarkRead(ctx context.Context, conversationID, userID int64, at chat.Cursor) (chat.Membership, bool, error) {
	row, err := db.New(s.conn).MarkRead(ctx, db.MarkReadParams{
		MessageID: at.ID, MessageCreatedAt: at.CreatedAt, ConversationID: conversationID, UserID: userID,
	})
	if err == nil {
		return membershipFromRow(row), true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return chat.Membership{}, false, translate(err)
	}
	m, err := s.GetMembership(ctx, conversationID, userID)
	return m, false, err
}

func clampInt32(n int) int32 { return int32(min(max(n, 0), math.MaxInt32)) } //nolint:gosec // clamped

func lastRead(id *int64, createdAt *time.Time) *chat.Cursor {
	if id == nil || createdAt == nil {
		return nil
	}
	return &chat.Cursor{CreatedAt: createdAt.UTC(), ID: *id}
}

// DeleteConversation deletes the conversation; foreign keys cascade to the
// rest. NotFound when there is none.
func (s *ChatStore) DeleteConversation(ctx context.Context, id int64) error {
	n, err := db.New(s.conn).DeleteConversation(ctx, id)
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return core.E(core.NotFound, "Not found")
	}
	return nil
}

// GetMembership returns userID's membership of the conversation. NotFound
// when userID is not a member.
func (s *ChatStore) GetMembership(ctx context.Context, conversationID, userID int64) (chat.Membership, error) {
	row, err := db.New(s.conn).GetMembership(ctx, db.GetMembershipParams{ConversationID: conversationID, UserID: userID})
	if err != nil {
		return chat.Membership{}, translate(err)
	}
	return membershipFromRow(row), nil
}

// ListMemberships returns the memberships of the conversations, ordered by
// conversation id, then CreatedAt, then user id.
func (s *ChatStore) ListMemberships(ctx context.Context, conversationIDs []int64) ([]chat.Membership, error) {
	rows, err := db.New(s.conn).ListMemberships(ctx, conversationIDs)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.Membership, len(rows))
	for i, r := range rows {
		out[i] = membershipFromRow(r)
	}
	return out, nil
}

// AddMembership stores m. Conflict when the user is already a member;
// NotFound when the conversation or the user does not exist.
func (s *ChatStore) AddMembership(ctx context.Context, m chat.Membership) error {
	return s.recoverable(ctx, func(q *db.Queries) error {
		return translateRef(q.AddMembership(ctx, db.AddMembershipParams{
			ConversationID: m.ConversationID,
			UserID:         m.UserID,
			Role:           int32(m.Role),
			CreatedAt:      m.CreatedAt,
		}))
	})
}

// RemoveMembership deletes the membership. NotFound when there is none.
func (s *ChatStore) RemoveMembership(ctx context.Context, conversationID, userID int64) error {
	n, err := db.New(s.conn).RemoveMembership(ctx, db.RemoveMembershipParams{ConversationID: conversationID, UserID: userID})
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return core.E(core.NotFound, "Not found")
	}
	return nil
}

// SetRole gives userID the role in the conversation. NotFound when userID
// is not a member.
func (s *ChatStore) SetRole(ctx context.Context, conversationID, userID int64, role chat.Role, at time.Time) error {
	n, err := db.New(s.conn).SetRole(ctx, db.SetRoleParams{Role: int32(role), UpdatedAt: at, ConversationID: conversationID, UserID: userID})
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return core.E(core.NotFound, "Not found")
	}
	return nil
}

// CreateMessage stores m and moves its conversation's LastMessageAt forward
// in the same statement, creating the partition for m.CreatedAt's month
// first if need be. NotFound when the conversation or the user does not
// exist.
func (s *ChatStore) CreateMessage(ctx context.Context, m chat.Message) (chat.Message, error) {
	if err := s.ensurePartition(ctx, m.CreatedAt); err != nil {
		return chat.Message{}, err
	}
	row, err := db.New(s.conn).CreateMessage(ctx, db.CreateMessageParams{
		ConversationID:  m.ConversationID,
		UserID:          m.UserID,
		Content:         m.Content,
		MessageType:     int32(m.Type),
		ParentMessageID: m.ParentMessageID,
		CallSessionID:   m.CallSessionID,
		CreatedAt:       m.CreatedAt,
	})
	if err != nil {
		return chat.Message{}, translateRef(err)
	}
	return messageFromRow(db.Message(row)), nil
}

// PostMessage is CreateMessage in one statement that inserts nothing, and
// answers NotFound, unless the author is a member of the conversation.
// The same statement looks up and takes m.ClientID's key
// (chatterly_post_message_v2, sql/migrations/00003); a key's message of
// another conversation is Conflict.
func (s *ChatStore) PostMessage(ctx context.Context, m chat.Message) (chat.Message, bool, error) {
	if err := s.ensurePartition(ctx, m.CreatedAt); err != nil {
		return chat.Message{}, false, err
	}
	row, err := db.New(s.conn).PostMessage(ctx, db.PostMessageParams{
		ConversationID:  m.ConversationID,
		UserID:          m.UserID,
		Content:         m.Content,
		MessageType:     int32(m.Type),
		ParentMessageID: m.ParentMessageID,
		CallSessionID:   m.CallSessionID,
		CreatedAt:       m.CreatedAt,
		ClientID:        m.ClientID,
	})
	if err != nil {
		return chat.Message{}, false, translateRef(err)
	}
	if !row.Created && row.ConversationID != m.ConversationID {
		return chat.Message{}, false, core.E(core.Conflict, "Client id already used for another conversation")
	}
	return messageFromRow(db.Message{
		ID: row.ID, ConversationID: row.ConversationID, UserID: row.UserID, Content: row.Content,
		MessageType: row.MessageType, ParentMessageID: row.ParentMessageID, CallSessionID: row.CallSessionID,
		EditedAt: row.EditedAt, DeletedAt: row.DeletedAt, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,
		ClientID: row.ClientID,
	}), row.Created, nil
}

// ensurePartition makes sure the month of t has a messages partition.
//
// Outside a transaction that is Partitions.EnsureFor. Inside one it cannot
// be: EnsureFor's DDL runs on another connection and needs locks on
// messages and on the tables it references, which this transaction may
// already hold, so each would wait for the other and neither server can
// see it. A month that Partitions does not know yet is therefore looked
// up, and created if missing, in the transaction itself; a partition
// created so goes away if the transaction rolls back.
func (s *ChatStore) ensurePartition(ctx context.Context, t time.Time) error {
	if !s.inTx || s.parts.knows(t) {
		return s.parts.EnsureFor(ctx, t)
	}
	// Checking existence first keeps the common case, a month another
	// instance created, free of the advisory lock, which would make every
	// other creator wait for this transaction's commit.
	var ok bool
	if err := s.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName(t)).Scan(&ok); err != nil || ok {
		return translate(err)
	}
	return createPartition(ctx, s.conn, monthStart(t))
}

// GetMessage returns message id, deleted or not. It probes the primary key
// index of each partition, as the id alone does not say which holds it.
// NotFound when there is none, or when conversationID is not 0 and the
// message is in another conversation.
func (s *ChatStore) GetMessage(ctx context.Context, conversationID, id int64) (chat.Message, error) {
	row, err := db.New(s.conn).GetMessage(ctx, db.GetMessageParams{ID: id, ConversationID: conversationID})
	if err != nil {
		return chat.Message{}, translate(err)
	}
	return messageFromRow(row), nil
}

// LockMessage is GetMessage with the row locked (SELECT … FOR UPDATE) until
// the transaction ends; outside one the lock ends with the statement.
func (s *ChatStore) LockMessage(ctx context.Context, conversationID, id int64) (chat.Message, error) {
	row, err := db.New(s.conn).LockMessage(ctx, db.LockMessageParams{ID: id, ConversationID: conversationID})
	if err != nil {
		return chat.Message{}, translate(err)
	}
	return messageFromRow(row), nil
}

// UpdateMessage writes m's Content, EditedAt, DeletedAt and UpdatedAt to the
// message in m.CreatedAt's partition. NotFound when there is none.
func (s *ChatStore) UpdateMessage(ctx context.Context, m chat.Message) (chat.Message, error) {
	row, err := db.New(s.conn).UpdateMessage(ctx, db.UpdateMessageParams{
		Content:   m.Content,
		EditedAt:  m.EditedAt,
		DeletedAt: m.DeletedAt,
		UpdatedAt: m.UpdatedAt,
		ID:        m.ID,
		CreatedAt: m.CreatedAt,
	})
	if err != nil {
		return chat.Message{}, translate(err)
	}
	return messageFromRow(row), nil
}

// History returns up to limit of the conversation's messages that are not
// deleted, newest first, strictly older than before when it is not nil. It
// reads index_messages_history partition by partition, newest first, and
// stops at the limit; a cursor prunes the partitions newer than it.
func (s *ChatStore) History(ctx context.Context, conversationID int64, before *chat.Cursor, limit int) ([]chat.Message, error) {
	if limit <= 0 {
		return []chat.Message{}, nil
	}
	q := db.New(s.conn)
	maxMessages := int32(min(limit, math.MaxInt32))
	var rows []db.Message
	var err error
	if before == nil {
		// The newest page reads the last two months first and older ones
		// only if those fall short: a query over every partition pays for
		// opening each of them even when the limit stops it in the first.
		since := monthStart(time.Now()).AddDate(0, -1, 0)
		rows, err = q.HistorySince(ctx, db.HistorySinceParams{ConversationID: conversationID, Since: since, MaxMessages: maxMessages})
		if err == nil && len(rows) < limit {
			var older []db.Message
			older, err = q.HistoryBefore(ctx, db.HistoryBeforeParams{
				ConversationID: conversationID, BeforeCreatedAt: since, BeforeID: 0,
				MaxMessages: maxMessages - int32(len(rows)), //nolint:gosec // len(rows) < limit <= MaxInt32
			})
			rows = append(rows, older...)
		}
	} else {
		rows, err = q.HistoryBefore(ctx, db.HistoryBeforeParams{
			ConversationID:  conversationID,
			BeforeCreatedAt: before.CreatedAt,
			BeforeID:        before.ID,
			MaxMessages:     maxMessages,
		})
	}
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.Message, len(rows))
	for i, r := range rows {
		out[i] = messageFromRow(r)
	}
	return out, nil
}

// HistoryAfter returns up to limit of the conversation's messages that are
// not deleted, oldest first, strictly newer than after. The cursor prunes
// the partitions older than it; the newer ones are read oldest first
// through index_messages_history until the limit.
func (s *ChatStore) HistoryAfter(ctx context.Context, conversationID int64, after chat.Cursor, limit int) ([]chat.Message, error) {
	if limit <= 0 {
		return []chat.Message{}, nil
	}
	rows, err := db.New(s.conn).HistoryAfter(ctx, db.HistoryAfterParams{
		ConversationID: conversationID,
		AfterCreatedAt: after.CreatedAt,
		AfterID:        after.ID,
		MaxMessages:    int32(min(limit, math.MaxInt32)),
	})
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.Message, len(rows))
	for i, r := range rows {
		out[i] = messageFromRow(r)
	}
	return out, nil
}

// CreateReaction stores r. Conflict when the user already reacted to the
// message with the emoji; NotFound when the message (r.MessageID,
// r.MessageCreatedAt) or the user does not exist.
func (s *ChatStore) CreateReaction(ctx context.Context, r chat.Reaction) (chat.Reaction, error) {
	var row db.Reaction
	err := s.recoverable(ctx, func(q *db.Queries) error {
		var err error
		row, err = q.CreateReaction(ctx, db.CreateReactionParams{
			MessageID:        r.MessageID,
			MessageCreatedAt: r.MessageCreatedAt,
			UserID:           r.UserID,
			Emoji:            r.Emoji,
			CreatedAt:        r.CreatedAt,
		})
		return translateRef(err)
	})
	if err != nil {
		return chat.Reaction{}, err
	}
	return reactionFromRow(row), nil
}

// GetReaction returns the reaction. NotFound when there is none.
func (s *ChatStore) GetReaction(ctx context.Context, id int64) (chat.Reaction, error) {
	row, err := db.New(s.conn).GetReaction(ctx, id)
	if err != nil {
		return chat.Reaction{}, translate(err)
	}
	return reactionFromRow(row), nil
}

// DeleteReaction deletes the reaction. NotFound when there is none.
func (s *ChatStore) DeleteReaction(ctx context.Context, id int64) error {
	n, err := db.New(s.conn).DeleteReaction(ctx, id)
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return core.E(core.NotFound, "Not found")
	}
	return nil
}

// ListReactions returns the reactions to the messages, ordered by ID.
func (s *ChatStore) ListReactions(ctx context.Context, messageIDs []int64) ([]chat.Reaction, error) {
	rows, err := db.New(s.conn).ListReactions(ctx, messageIDs)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.Reaction, len(rows))
	for i, r := range rows {
		out[i] = reactionFromRow(r)
	}
	return out, nil
}

// ContactIDs returns the distinct ids of the users who share at least one
// conversation with userID, userID excluded, in ascending order.
func (s *ChatStore) ContactIDs(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := db.New(s.conn).ContactIDs(ctx, userID)
	if err != nil {
		return nil, translate(err)
	}
	if ids == nil {
		ids = []int64{}
	}
	return ids, nil
}

// translateRef is translate, except that a reference to a missing row (a
// conversation, a user, a message) is NotFound: for the chat tables that
// is the only way a foreign key fails.
func translateRef(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation {
		return core.Wrap(core.NotFound, "Not found", err)
	}
	return translate(err)
}

func conversationFromRow(r db.Conversation) chat.Conversation {
	return chat.Conversation{
		ID:            r.ID,
		Name:          r.Name,
		Description:   r.Description,
		Type:          chat.ConversationType(r.ConversationType),
		CreatedByID:   r.CreatedByID,
		DirectKey:     r.DirectKey,
		LastMessageAt: utcPtr(r.LastMessageAt),
		CreatedAt:     r.CreatedAt.UTC(),
		UpdatedAt:     r.UpdatedAt.UTC(),
	}
}

func membershipFromRow(r db.ConversationMember) chat.Membership {
	return chat.Membership{
		ConversationID: r.ConversationID,
		UserID:         r.UserID,
		Role:           chat.Role(r.Role),
		CreatedAt:      r.CreatedAt.UTC(),
		LastRead:       lastRead(r.LastReadMessageID, r.LastReadMessageCreatedAt),
	}
}

func messageFromRow(r db.Message) chat.Message {
	return chat.Message{
		ID:              r.ID,
		ConversationID:  r.ConversationID,
		UserID:          r.UserID,
		Content:         r.Content,
		Type:            chat.MessageType(r.MessageType),
		ParentMessageID: r.ParentMessageID,
		CallSessionID:   r.CallSessionID,
		ClientID:        r.ClientID,
		EditedAt:        utcPtr(r.EditedAt),
		DeletedAt:       utcPtr(r.DeletedAt),
		CreatedAt:       r.CreatedAt.UTC(),
		UpdatedAt:       r.UpdatedAt.UTC(),
	}
}

func reactionFromRow(r db.Reaction) chat.Reaction {
	return chat.Reaction{
		ID:               r.ID,
		MessageID:        r.MessageID,
		MessageCreatedAt: r.MessageCreatedAt.UTC(),
		UserID:           r.UserID,
		Emoji:            r.Emoji,
		CreatedAt:        r.CreatedAt.UTC(),
	}
}
