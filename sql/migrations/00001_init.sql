-- The original Rails application's tables, columns and integer enum codes,
-- so that an existing Chatterly database can be adopted as it is.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id                 bigserial PRIMARY KEY,
    email              varchar NOT NULL,
    encrypted_password varchar NOT NULL DEFAULT '',
    username           varchar NOT NULL,
    display_name       varchar,
    avatar_url         varchar,
    last_seen_at       timestamptz,
    failed_attempts    integer NOT NULL DEFAULT 0,
    unlock_token       varchar,
    locked_at          timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    -- Uniqueness is case-insensitive only because both are stored lower-case.
    CONSTRAINT users_email_lower_case CHECK (email = lower(email)),
    CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_]{3,30}$')
);
CREATE UNIQUE INDEX index_users_on_email ON users (email);
CREATE UNIQUE INDEX index_users_on_username ON users (username);
CREATE UNIQUE INDEX index_users_on_unlock_token ON users (unlock_token);
-- Search matches substrings, which only trigram indexes can serve.
CREATE INDEX index_users_on_lower_username_trgm ON users USING gin (lower(username) gin_trgm_ops);
CREATE INDEX index_users_on_lower_display_name_trgm ON users USING gin (lower(display_name) gin_trgm_ops);

CREATE TABLE conversations (
    id                bigserial PRIMARY KEY,
    name              varchar,
    description       text,
    conversation_type integer NOT NULL DEFAULT 0,
    created_by_id     bigint NOT NULL REFERENCES users (id),
    last_message_at   timestamptz,
    -- "<smaller user id>:<larger user id>" for a direct conversation, so that
    -- a unique index allows at most one per pair of users.
    direct_key        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT conversations_conversation_type_check CHECK (conversation_type IN (0, 1, 2)),
    CONSTRAINT conversations_direct_key_check CHECK ((conversation_type = 2) = (direct_key IS NOT NULL))
);
CREATE UNIQUE INDEX index_conversations_on_direct_key ON conversations (direct_key);
CREATE INDEX index_conversations_on_created_by_id ON conversations (created_by_id);

CREATE TABLE conversation_members (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            integer NOT NULL DEFAULT 0,
    last_read_at    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT conversation_members_role_check CHECK (role IN (0, 1))
);
-- Its leftmost column also serves lookups by conversation alone.
CREATE UNIQUE INDEX index_conversation_members_on_conversation_id_and_user_id
    ON conversation_members (conversation_id, user_id);
CREATE INDEX index_conversation_members_on_user_id ON conversation_members (user_id);

CREATE TABLE call_sessions (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    initiator_id    bigint NOT NULL REFERENCES users (id),
    call_type       integer NOT NULL DEFAULT 0,
    status          integer NOT NULL DEFAULT 0,
    started_at      timestamptz,
    ended_at        timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT call_sessions_call_type_check CHECK (call_type IN (0, 1)),
    CONSTRAINT call_sessions_status_check CHECK (status BETWEEN 0 AND 5)
);
CREATE INDEX index_call_sessions_on_conversation_id ON call_sessions (conversation_id);
CREATE INDEX index_call_sessions_on_initiator_id ON call_sessions (initiator_id);
-- At most one calling, ringing or active call per conversation.
CREATE UNIQUE INDEX index_call_sessions_one_ongoing_per_conversation
    ON call_sessions (conversation_id) WHERE status IN (0, 1, 2);
-- The missed-call sweeper looks for calls still ringing after a deadline.
CREATE INDEX index_call_sessions_on_status_and_created_at ON call_sessions (status, created_at);

CREATE TABLE call_participants (
    id              bigserial PRIMARY KEY,
    call_session_id bigint NOT NULL REFERENCES call_sessions (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id),
    joined_at       timestamptz,
    left_at         timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX index_call_participants_on_call_session_id_and_user_id
    ON call_participants (call_session_id, user_id);
CREATE INDEX index_call_participants_on_user_id ON call_participants (user_id);

-- One partition per month; the application creates them ahead of time
-- (postgres.Partitions), so this migration creates none.
CREATE TABLE messages (
    id                bigserial NOT NULL,
    conversation_id   bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id           bigint NOT NULL REFERENCES users (id),
    content           text NOT NULL,
    message_type      integer NOT NULL DEFAULT 0,
    -- No foreign key: it would have to carry the parent's created_at too.
    parent_message_id bigint,
    call_session_id   bigint REFERENCES call_sessions (id) ON DELETE CASCADE,
    edited_at         timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (id, created_at),
    CONSTRAINT messages_message_type_check CHECK (message_type BETWEEN 0 AND 3)
) PARTITION BY RANGE (created_at);
CREATE INDEX index_messages_history ON messages (conversation_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX index_messages_on_parent_message_id ON messages (parent_message_id)
    WHERE parent_message_id IS NOT NULL;
CREATE INDEX index_messages_on_call_session_id ON messages (call_session_id)
    WHERE call_session_id IS NOT NULL;

CREATE TABLE reactions (
    id                 bigserial PRIMARY KEY,
    message_id         bigint NOT NULL,
    -- Carried so that lookups and the foreign key prune to one partition.
    message_created_at timestamptz NOT NULL,
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji              varchar NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CONSTRAINT reactions_message_fkey FOREIGN KEY (message_id, message_created_at)
        REFERENCES messages (id, created_at) ON DELETE CASCADE,
    CONSTRAINT reactions_emoji_length CHECK (char_length(emoji) BETWEEN 1 AND 10)
);
CREATE UNIQUE INDEX index_reactions_on_message_id_and_user_id_and_emoji
    ON reactions (message_id, user_id, emoji);
CREATE INDEX index_reactions_on_message_id_and_message_created_at
    ON reactions (message_id, message_created_at);
CREATE INDEX index_reactions_on_user_id ON reactions (user_id);

-- +goose Down
DROP TABLE reactions;
DROP TABLE messages;
DROP TABLE call_participants;
DROP TABLE call_sessions;
DROP TABLE conversation_members;
DROP TABLE conversations;
DROP TABLE users;
DROP EXTENSION IF EXISTS pg_trgm;
