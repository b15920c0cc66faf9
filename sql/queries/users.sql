-- name: CreateUser :one
INSERT INTO users (email, encrypted_password, username, display_name, created_at, updated_at)
VALUES (lower(@email::text), @encrypted_password, lower(@username::text), @display_name, @created_at, @created_at)
RETURNING *;

-- name: GetUser :one
SELECT * FROM users WHERE id = @id;

-- name: GetUsers :many
SELECT * FROM users WHERE id = ANY (@ids::bigint[]);

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = lower(@email::text);

-- name: UsersTaken :one
-- Tells which of an email and a username are in use, to explain a unique violation.
SELECT
    EXISTS (SELECT 1 FROM users u WHERE u.email = lower(@email::text)) AS email_taken,
    EXISTS (SELECT 1 FROM users u WHERE u.username = lower(@username::text)) AS username_taken;

-- name: LockUser :one
SELECT * FROM users WHERE id = @id FOR UPDATE;

-- name: UpdateUser :one
UPDATE users
SET display_name    = @display_name,
    avatar_url      = @avatar_url,
    last_seen_at    = @last_seen_at,
    failed_attempts = @failed_attempts,
    locked_at       = @locked_at,
    updated_at      = now()
WHERE id = @id
RETURNING *;

-- name: SearchUsers :many
-- pattern is the term with \, % and _ escaped; the lower() expressions match
-- the trigram indexes. Usernames sort bytewise so that every deployment, and
-- the in-memory store, agree on the order.
SELECT * FROM users
WHERE lower(username) ILIKE '%' || @pattern::text || '%' ESCAPE '\'
   OR lower(display_name) ILIKE '%' || @pattern::text || '%' ESCAPE '\'
ORDER BY
    CASE
        WHEN username = lower(@term::text) THEN 0
        WHEN lower(username) ILIKE @pattern::text || '%' ESCAPE '\'
          OR lower(display_name) ILIKE @pattern::text || '%' ESCAPE '\' THEN 1
        ELSE 2
    END,
    username COLLATE "C"
LIMIT @max_results;

-- name: SeenUser :one
-- A presence stamp is not worth a disk flush per user coming online:
-- set_config(..., true) makes this statement's own transaction commit
-- asynchronously (a crash may lose the latest stamps, nothing else).
UPDATE users
SET last_seen_at = @last_seen_at
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE users.id = @id
RETURNING users.*;
