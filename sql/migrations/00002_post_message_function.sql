-- The send path's statement as a PL/pgSQL function. PostgreSQL keeps a
-- PL/pgSQL function's plans for the life of the server session, whatever
-- protocol the client speaks, so the statement is planned once per server
-- connection even through a transaction-mode pooler, where a client cannot
-- keep named prepared statements and every other statement is planned anew
-- on each execution (docs/benchmarks.md, "Behind PgBouncer").
--
-- Nothing is inserted, and no row comes back, unless the author is a member
-- of the conversation: checking in the insert saves the send path a round
-- trip. A membership removed concurrently either commits first (no insert)
-- or after (the message was sent while a member). The same statement moves
-- the conversation's last_message_at forward, never back.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION chatterly_post_message(
    p_conversation_id   bigint,
    p_user_id           bigint,
    p_content           text,
    p_message_type      integer,
    p_parent_message_id bigint,
    p_call_session_id   bigint,
    p_created_at        timestamptz
) RETURNS SETOF messages
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH message AS (
        INSERT INTO messages (
            conversation_id, user_id, content, message_type,
            parent_message_id, call_session_id, created_at, updated_at
        )
        SELECT cm.conversation_id, cm.user_id, p_content, p_message_type,
            p_parent_message_id, p_call_session_id, p_created_at, p_created_at
        FROM conversation_members cm
        WHERE cm.conversation_id = p_conversation_id AND cm.user_id = p_user_id
        RETURNING *
    ), bumped AS (
        UPDATE conversations c
        SET last_message_at = message.created_at
        FROM message
        WHERE c.id = message.conversation_id
          AND (c.last_message_at IS NULL OR c.last_message_at < message.created_at)
    )
    SELECT * FROM message;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION chatterly_post_message(bigint, bigint, text, integer, bigint, bigint, timestamptz);
