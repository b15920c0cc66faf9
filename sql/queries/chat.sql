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
SELECT c.* FROM conversations c
JOIN conversation_members m ON m.conversation_id = c.id
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
