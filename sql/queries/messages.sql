-- name: CreateMessage :one
-- created_at is explicit: it chooses the partition, which must exist. The
-- same statement moves the conversation's last_message_at forward, never
-- back, so a backdated message leaves the conversation's place in lists.
WITH message AS (
    INSERT INTO messages (
        conversation_id, user_id, content, message_type,
        parent_message_id, call_session_id, created_at, updated_at
    ) VALUES (
        @conversation_id, @user_id, @content, @message_type,
        @parent_message_id, @call_session_id, @created_at, @created_at
    )
    RETURNING *
), bumped AS (
    UPDATE conversations c
    SET last_message_at = message.created_at
    FROM message
    WHERE c.id = message.conversation_id
      AND (c.last_message_at IS NULL OR c.last_message_at < message.created_at)
)
SELECT * FROM message;

-- name: PostMessage :one
-- CreateMessage for a message a user sends, through the
-- chatterly_post_message_v3 function (sql/migrations/00003, 00004):
-- nothing is inserted, and no row comes back, unless the author is a
-- member. With a client_id taken by the user in the last 24 hours, nothing
-- is inserted either, and the row is the message it names, with created
-- false. A stored message moves its author's read marker to it.
SELECT * FROM chatterly_post_message_v3(
    @conversation_id::bigint, @user_id::bigint, @content::text, @message_type::int,
    sqlc.narg(parent_message_id)::bigint, sqlc.narg(call_session_id)::bigint,
    @created_at::timestamptz, sqlc.narg(client_id)::text
);

-- name: GetMessage :one
-- Looked up by id alone, it probes each partition's primary key index.
-- With the id fixed that index is in created_at order, so the partitions
-- are probed newest first, where most looked-up messages are, and the
-- LIMIT stops at the first that has it.
SELECT * FROM messages
WHERE id = @id
  AND (@conversation_id::bigint = 0 OR conversation_id = @conversation_id)
ORDER BY created_at DESC
LIMIT 1;

-- name: LockMessage :one
-- GetMessage, locking the row: edits of one message take it first, so they
-- are stored, and their events published, one at a time.
SELECT * FROM messages
WHERE id = @id
  AND (@conversation_id::bigint = 0 OR conversation_id = @conversation_id)
ORDER BY created_at DESC
LIMIT 1
FOR UPDATE;

-- name: UpdateMessage :one
-- created_at prunes the statement to the message's partition. A deleted
-- message is never changed again, which also makes deleting it atomic:
-- of two concurrent deletes, only one finds it live.
UPDATE messages
SET content = @content, edited_at = @edited_at, deleted_at = @deleted_at, updated_at = @updated_at
WHERE id = @id AND created_at = @created_at AND deleted_at IS NULL
RETURNING *;

-- name: HistorySince :many
-- The first page's usual case: the lower bound on created_at prunes every
-- partition older than since when the executor starts, so two years of
-- partitions cost nothing when the page is found in the last two months.
SELECT * FROM messages
WHERE conversation_id = @conversation_id AND deleted_at IS NULL
  AND created_at >= @since::timestamptz
ORDER BY created_at DESC, id DESC
LIMIT @max_messages;

-- name: HistoryBefore :many
-- A later page. The row comparison is an index condition; the separate
-- created_at bound is what partition pruning understands, so partitions
-- newer than the cursor are never opened.
SELECT * FROM messages
WHERE conversation_id = @conversation_id AND deleted_at IS NULL
  AND (created_at, id) < (@before_created_at::timestamptz, @before_id::bigint)
  AND created_at <= @before_created_at::timestamptz
ORDER BY created_at DESC, id DESC
LIMIT @max_messages;

-- name: HistoryAfter :many
-- Catch-up, oldest first: HistoryBefore the other way. The created_at
-- bound prunes the partitions older than the cursor; the newer ones stay
-- in the plan, read in order through index_messages_history (backwards),
-- and the LIMIT stops before those past the page are opened.
SELECT * FROM messages
WHERE conversation_id = @conversation_id AND deleted_at IS NULL
  AND (created_at, id) > (@after_created_at::timestamptz, @after_id::bigint)
  AND created_at >= @after_created_at::timestamptz
ORDER BY created_at, id
LIMIT @max_messages;
