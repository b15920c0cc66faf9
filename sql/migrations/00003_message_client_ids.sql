-- Idempotent sends: a client names each message it sends with a client_id
-- of its own, and a retry with the same one by the same user within 24
-- hours gets the message stored the first time instead of a second one.
--
-- messages.client_id only shows the name in every rendering of the message.
-- Uniqueness cannot live on messages: a unique index on a partitioned table
-- must include the partition key (created_at), and a retry has a new
-- created_at. message_client_ids, unpartitioned and small (a day of keyed
-- sends), holds the keys: its primary key is what makes concurrent sends of
-- one key store one message.
--
-- The send path calls a new function, chatterly_post_message_v2, rather
-- than replacing chatterly_post_message: the new one returns one more
-- column (created) and takes one more parameter, and CREATE OR REPLACE can
-- change neither. Dropping and re-creating the old name would break, for
-- the length of a rolling deploy, the instances still running the previous
-- release, whose statements name the old function with seven arguments
-- (with a DEFAULT NULL eighth parameter both overloads would also match a
-- seven-argument call, which PostgreSQL refuses as ambiguous). The old
-- function keeps working unchanged (its rows carry client_id NULL); a later
-- migration drops it once no instance calls it.

-- +goose Up
-- Nullable without a default: a catalog-only change, no partition is rewritten.
ALTER TABLE messages ADD COLUMN client_id text;

CREATE TABLE message_client_ids (
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id          text NOT NULL,
    -- A key outlives nothing it names: deleting the conversation deletes its messages.
    conversation_id    bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- With message_created_at, locates the message in one partition. No
    -- foreign key: the conversation's cascade already removes the key with
    -- the message, and the key row is written before the message.
    message_id         bigint NOT NULL,
    message_created_at timestamptz NOT NULL,
    -- When the key was taken, by the application's clock (the message's
    -- created_at), so that the 24-hour window is the one the application sees.
    created_at         timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id),
    CONSTRAINT message_client_ids_client_id_length CHECK (char_length(client_id) BETWEEN 1 AND 64)
);
CREATE INDEX index_message_client_ids_on_created_at ON message_client_ids (created_at);
CREATE INDEX index_message_client_ids_on_conversation_id ON message_client_ids (conversation_id);

-- The row type of chatterly_post_message_v2: a message and whether this
-- call stored it. A view rather than RETURNS TABLE or a composite type,
-- because sqlc reads the columns of a SETOF view (and of a table) but not
-- those of the other two; it holds no rows. Its columns are fixed when it
-- is created, so a column added to messages later does not change it.
CREATE VIEW posted_messages AS
SELECT m.id, m.conversation_id, m.user_id, m.content, m.message_type,
    m.parent_message_id, m.call_session_id, m.edited_at, m.deleted_at,
    m.created_at, m.updated_at, m.client_id, true AS created
FROM messages m WHERE false;
-- +goose StatementBegin
CREATE FUNCTION chatterly_post_message_v2(
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
    IF p_client_id IS NULL THEN
        -- chatterly_post_message's statement (00002).
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
        SELECT m.id, m.conversation_id, m.user_id, m.content, m.message_type,
            m.parent_message_id, m.call_session_id, m.edited_at, m.deleted_at,
            m.created_at, m.updated_at, m.client_id, true
        FROM message m;
        RETURN;
    END IF;

    -- Only a member reads or takes a key: a retry by a member who left is
    -- NotFound, as any send of theirs is. The insert below checks again
    -- rather than lock the membership here: a removal locks the
    -- conversation before the membership, and this statement locks the
    -- conversation (its foreign keys, the bump) after, so holding the
    -- membership could deadlock with it.
    PERFORM 1 FROM conversation_members cm
    WHERE cm.conversation_id = p_conversation_id AND cm.user_id = p_user_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    -- The message's id is drawn first so that the key can name it: of
    -- concurrent senders of one key, the primary key lets one insert (or
    -- take over a stale key) and makes the others wait for its commit, after
    -- which they find its row, locked, and read the message it names. A
    -- loser's id is never used, a gap like a rolled-back insert's.
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
        -- A live key: ON CONFLICT locked its row, so it stays until this
        -- transaction ends, and it names a committed message.
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

    -- Keys expire after 24 hours, but nothing else deletes them: each send
    -- that takes a key deletes up to ten expired ones, oldest first. Keys
    -- expire at the rate they are taken, so this keeps the table at about a
    -- day of keys, and costs one probe of the created_at index while none
    -- has expired. SKIP LOCKED keeps concurrent senders, and a sender taking
    -- over an expired key, from waiting on each other.
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
    IF NOT FOUND THEN
        -- The membership went after the check: no message, so no key either.
        DELETE FROM message_client_ids k
        WHERE k.user_id = p_user_id AND k.client_id = p_client_id;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION chatterly_post_message_v2(bigint, bigint, text, integer, bigint, bigint, timestamptz, text);
DROP VIEW posted_messages;
DROP TABLE message_client_ids;
ALTER TABLE messages DROP COLUMN client_id;
