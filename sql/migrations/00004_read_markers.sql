-- Read state: each membership keeps the newest message its user has read,
-- and a conversation shows how many messages by others came after it.
--
-- The marker is the message's id with its created_at: history orders
-- messages by (created_at, id), so "after the marker" is a range of
-- index_messages_history, and created_at is the partition key, so a
-- count from the marker prunes every partition older than it.
--
-- A NULL marker means the member has marked nothing: the messages from
-- the moment they joined (conversation_members.created_at) on count, the
-- older ones do not. A new member therefore starts with everything read,
-- and joining writes nothing more than the membership.
--
-- Counts are not kept per membership: a counter would cost a row write for
-- every member on every message, thousands in a big channel. They are
-- counted when read instead, up to a cap, through index_messages_history;
-- sending moves the author's own marker (chatterly_post_message_v3), so
-- the author's messages, which never count, are not there for the count
-- to step over.
--
-- The send path moves to chatterly_post_message_v3 for the reason 00003
-- gave for v2: the previous release keeps calling v2 during a rolling
-- deploy. A message v2 stores leaves its author's marker behind; the
-- author's next mark-read or send moves it again.

-- +goose Up
-- Nullable without defaults: catalog-only changes, no table rewrite.
ALTER TABLE conversation_members
    ADD COLUMN last_read_message_id bigint,
    ADD COLUMN last_read_message_created_at timestamptz,
    ADD CONSTRAINT conversation_members_last_read_both CHECK (
        (last_read_message_id IS NULL) = (last_read_message_created_at IS NULL));

-- +goose StatementBegin
CREATE FUNCTION chatterly_post_message_v3(
    p_conversation_id   bigint,
    p_user_id           bigint,
    p_content           text,
    p_message_type      integer,
    p_parent_message_id bigint,
    p_call_session_id   bigint,
    p_created_at        timestamptz,
    p_client_id         text
) RETURNS SETOF posted_messages
LANGUAGE plpgsql
AS $$
DECLARE
    v_id  bigint;
    v_key message_client_ids%ROWTYPE;
BEGIN
    -- chatterly_post_message_v2 (00003) with one step added: a stored
    -- message moves its author's read marker to it. Its comments there
    -- explain the rest.
    IF p_client_id IS NULL THEN
        -- The id is drawn first, as the keyed path does, so that the
        -- marker can name the message after RETURN QUERY.
        v_id := nextval(pg_get_serial_sequence('messages', 'id'));
        RETURN QUERY
        WITH message AS (
            INSERT INTO messages (
                id, conversation_id, user_id, content, message_type,
                parent_message_id, call_session_id, created_at, updated_at
            )
            SELECT v_id, cm.conversation_id, cm.user_id, p_content, p_message_type,
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
        SELECT m.id, m.conversation_id, m.user_id, m.content, m.message_type,
            m.parent_message_id, m.call_session_id, m.edited_at, m.deleted_at,
            m.created_at, m.updated_at, m.client_id, true
        FROM message m;
        IF FOUND THEN
            PERFORM chatterly_mark_own_message_read(p_conversation_id, p_user_id, v_id, p_created_at);
        END IF;
        RETURN;
    END IF;

    PERFORM 1 FROM conversation_members cm
    WHERE cm.conversation_id = p_conversation_id AND cm.user_id = p_user_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    v_id := nextval(pg_get_serial_sequence('messages', 'id'));
    INSERT INTO message_client_ids AS k (
        user_id, client_id, conversation_id, message_id, message_created_at, created_at
    ) VALUES (p_user_id, p_client_id, p_conversation_id, v_id, p_created_at, p_created_at)
    ON CONFLICT (user_id, client_id) DO UPDATE
    SET conversation_id = excluded.conversation_id, message_id = excluded.message_id,
        message_created_at = excluded.message_created_at, created_at = excluded.created_at
    WHERE k.created_at <= excluded.created_at - interval '24 hours'
    RETURNING k.* INTO v_key;

    IF NOT FOUND THEN
        SELECT k.* INTO v_key FROM message_client_ids k
        WHERE k.user_id = p_user_id AND k.client_id = p_client_id;
        RETURN QUERY
        SELECT m.id, m.conversation_id, m.user_id, m.content, m.message_type,
            m.parent_message_id, m.call_session_id, m.edited_at, m.deleted_at,
            m.created_at, m.updated_at, m.client_id, false
        FROM messages m
        WHERE m.id = v_key.message_id AND m.created_at = v_key.message_created_at;
        RETURN;
    END IF;

    DELETE FROM message_client_ids
    WHERE ctid = ANY (ARRAY(
        SELECT e.ctid FROM message_client_ids e
        WHERE e.created_at <= p_created_at - interval '24 hours'
        ORDER BY e.created_at
        LIMIT 10
        FOR UPDATE SKIP LOCKED
    ));

    RETURN QUERY
    WITH message AS (
        INSERT INTO messages (
            id, conversation_id, user_id, content, message_type,
            parent_message_id, call_session_id, client_id, created_at, updated_at
        )
        SELECT v_id, cm.conversation_id, cm.user_id, p_content, p_message_type,
            p_parent_message_id, p_call_session_id, p_client_id, p_created_at, p_created_at
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
    SELECT m.id, m.conversation_id, m.user_id, m.content, m.message_type,
        m.parent_message_id, m.call_session_id, m.edited_at, m.deleted_at,
        m.created_at, m.updated_at, m.client_id, true
    FROM message m;
    IF FOUND THEN
        PERFORM chatterly_mark_own_message_read(p_conversation_id, p_user_id, v_id, p_created_at);
    ELSE
        DELETE FROM message_client_ids k
        WHERE k.user_id = p_user_id AND k.client_id = p_client_id;
    END IF;
END
$$;
-- +goose StatementEnd

-- The author's marker moves in a statement of its own, after the insert:
-- by then the insert's foreign key has locked the conversation (and the
-- bump may have), so the membership row is locked after the conversation,
-- the order a removal takes them in (LockConversation, then the delete),
-- and the two cannot deadlock. Forward only, in history's order, as
-- MarkRead moves it.
-- +goose StatementBegin
CREATE FUNCTION chatterly_mark_own_message_read(
    p_conversation_id bigint,
    p_user_id         bigint,
    p_message_id      bigint,
    p_created_at      timestamptz
) RETURNS void
LANGUAGE sql
AS $$
    UPDATE conversation_members cm
    SET last_read_message_id = p_message_id, last_read_message_created_at = p_created_at
    WHERE cm.conversation_id = p_conversation_id AND cm.user_id = p_user_id
      AND (cm.last_read_message_id IS NULL
           OR (cm.last_read_message_created_at, cm.last_read_message_id) < (p_created_at, p_message_id));
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION chatterly_post_message_v3(bigint, bigint, text, integer, bigint, bigint, timestamptz, text);
DROP FUNCTION chatterly_mark_own_message_read(bigint, bigint, bigint, timestamptz);
ALTER TABLE conversation_members
    DROP CONSTRAINT conversation_members_last_read_both,
    DROP COLUMN last_read_message_created_at,
    DROP COLUMN last_read_message_id;
