-- name: CreateMessage :one
-- created_at is explicit: it chooses the partition, which must exist.
INSERT INTO messages (
    conversation_id, user_id, content, message_type,
    parent_message_id, call_session_id, created_at, updated_at
) VALUES (
    @conversation_id, @user_id, @content, @message_type,
    @parent_message_id, @call_session_id, @created_at, @created_at
)
RETURNING *;
