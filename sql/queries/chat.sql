-- name: CreateConversation :one
-- One statement stores the conversation and all its members, so a duplicate
-- direct_key leaves nothing behind and the members cost no extra round trips.
WITH conversation AS (
    INSERT INTO conversations (
        name, description, conversation_type, created_by_id, direct_key,
        last_message_at, created_at, updated_at
    ) VALUES (
        @name, @description, @conversation_type, @created_by_id, @direct_key,
        @last_message_at, @created_at, @updated_at
    )
    RETURNING *
), members AS (
    INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at)
    SELECT conversation.id, m.user_id, m.role, m.created_at, m.created_at
    FROM conversation, (
        -- Set-returning functions in one select list advance in step.
        SELECT unnest(@member_user_ids::bigint[]) AS user_id,
               unnest(@member_roles::integer[]) AS role,
               unnest(@member_created_ats::timestamptz[]) AS created_at
    ) m
)
SELECT * FROM conversation;

-- name: GetConversation :one
SELECT * FROM conversations WHERE id = @id;

-- name: LockConversation :one
-- Membership changes and deletion take this lock first, so that two of them
-- on one conversation cannot both act on what the other is changing (two
-- admins leaving at once would otherwise both see the other stay).
SELECT * FROM conversations WHERE id = @id FOR UPDATE;

-- name: GetDirect :one
SELECT * FROM conversations WHERE direct_key = @direct_key;

-- name: ListConversations :many
-- Each of the user's conversations with their read marker and the number
-- of messages by others after it, counted up to @unread_limit: a LATERAL
-- probe of index_messages_history per conversation, from the marker (or
-- from when the user joined) forward, that stops at the limit. The
-- created_at bound prunes, each time the probe runs, the partitions older
-- than the marker. No ORDER BY: which messages a capped count stops at
-- does not matter, and without one the Append reads the partitions in
-- their bound order, oldest first, and the LIMIT stops it at the cap.
-- Sending moves the sender's marker, so the sender's own messages
-- (filtered out) are not in the range to step over.
-- adapters/postgres/unread_plan_test.go checks the plan.
SELECT c.id, c.name, c.description, c.conversation_type, c.created_by_id,
    c.direct_key, c.last_message_at, c.created_at, c.updated_at,
    m.last_read_message_id, m.last_read_message_created_at,
    unread.n AS unread_count
FROM conversation_members m
JOIN conversations c ON c.id = m.conversation_id
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n FROM (
        SELECT 1 FROM messages msg
        WHERE msg.conversation_id = m.conversation_id AND msg.deleted_at IS NULL
          AND (msg.created_at, msg.id) > (coalesce(m.last_read_message_created_at, m.created_at), coalesce(m.last_read_message_id, 0))
          AND msg.created_at >= coalesce(m.last_read_message_created_at, m.created_at)
          AND msg.user_id <> m.user_id
        LIMIT @unread_limit::int
    ) after_marker
) unread
WHERE m.user_id = @user_id
ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id DESC;

-- name: DeleteConversation :execrows
-- Foreign keys cascade to members, messages in every partition, their
-- reactions, and calls.
DELETE FROM conversations WHERE id = @id;

-- name: GetMembership :one
SELECT * FROM conversation_members WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: ListMemberships :many
SELECT * FROM conversation_members
WHERE conversation_id = ANY (@conversation_ids::bigint[])
ORDER BY conversation_id, created_at, user_id;

-- name: AddMembership :exec
INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at)
VALUES (@conversation_id, @user_id, @role, @created_at, @created_at);

-- name: UnreadCount :one
-- ListConversations' count for one membership.
SELECT count(*)::int FROM (
    SELECT 1 FROM messages msg
    WHERE msg.conversation_id = @conversation_id AND msg.deleted_at IS NULL
      AND (msg.created_at, msg.id) > (@after_created_at::timestamptz, @after_id::bigint)
      AND msg.created_at >= @after_created_at::timestamptz
      AND msg.user_id <> @user_id
    LIMIT @unread_limit::int
) after_marker;

-- name: MarkRead :one
-- Moves the marker forward only, in history's (created_at, id) order. The
-- comparison is in the WHERE clause, so a concurrent mark of the same
-- membership, which this one waits for, is compared against again once it
-- commits: of two devices marking at once, the later message wins
-- whichever commits first. No row when the marker is already there or
-- later, or when there is no such membership.
UPDATE conversation_members
SET last_read_message_id = @message_id::bigint, last_read_message_created_at = @message_created_at::timestamptz
WHERE conversation_id = @conversation_id AND user_id = @user_id
  AND (last_read_message_id IS NULL
       OR (last_read_message_created_at, last_read_message_id) < (@message_created_at::timestamptz, @message_id::bigint))
RETURNING *;

-- name: RemoveMembership :execrows
DELETE FROM conversation_members WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: SetRole :execrows
UPDATE conversation_members SET role = @role, updated_at = @updated_at
WHERE conversation_id = @conversation_id AND user_id = @user_id;

-- name: ContactIDs :many
-- Each of the user's memberships (index on user_id) leads to its
-- conversation's members (the unique index on conversation_id, user_id).
SELECT DISTINCT other.user_id
FROM conversation_members mine
JOIN conversation_members other ON other.conversation_id = mine.conversation_id
WHERE mine.user_id = @user_id AND other.user_id <> @user_id
ORDER BY other.user_id;

-- name: CreateReaction :one
INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at)
VALUES (@message_id, @message_created_at, @user_id, @emoji, @created_at, @created_at)
RETURNING *;

-- name: GetReaction :one
SELECT * FROM reactions WHERE id = @id;

-- name: DeleteReaction :execrows
DELETE FROM reactions WHERE id = @id;

-- name: ListReactions :many
SELECT * FROM reactions WHERE message_id = ANY (@message_ids::bigint[]) ORDER BY id;
