-- name: CreateCall :one
-- One statement stores the call and its participants, so a second ongoing
-- call of the conversation (index_call_sessions_one_ongoing_per_conversation)
-- leaves nothing behind. Array elements cannot be NULL in the generated
-- parameter types, so the zero time (0001-01-01 UTC) stands for NULL.
WITH call AS (
    INSERT INTO call_sessions (
        conversation_id, initiator_id, call_type, status,
        started_at, ended_at, created_at, updated_at
    ) VALUES (
        @conversation_id, @initiator_id, @call_type, @status,
        @started_at, @ended_at, @created_at, @updated_at
    )
    RETURNING *
), participants AS (
    INSERT INTO call_participants (call_session_id, user_id, joined_at, left_at, created_at, updated_at)
    SELECT call.id, p.user_id,
           nullif(p.joined_at, '0001-01-01 00:00:00+00'::timestamptz),
           nullif(p.left_at, '0001-01-01 00:00:00+00'::timestamptz),
           call.created_at, call.created_at
    FROM call, (
        -- Set-returning functions in one select list advance in step.
        SELECT unnest(@participant_user_ids::bigint[]) AS user_id,
               unnest(@participant_joined_ats::timestamptz[]) AS joined_at,
               unnest(@participant_left_ats::timestamptz[]) AS left_at
    ) p
)
SELECT * FROM call;

-- name: GetCall :one
SELECT * FROM call_sessions WHERE id = @id;

-- name: CallSummaries :many
SELECT id, call_type, status, started_at, ended_at, initiator_id
FROM call_sessions
WHERE id = ANY (@ids::bigint[])
ORDER BY id;

-- name: LockCall :one
-- Held until the transaction ends, so that of the racing terminal
-- transitions (REST, WebSocket, the missed-call sweeper) one goes first and
-- the others see its result.
SELECT * FROM call_sessions WHERE id = @id FOR UPDATE;

-- name: OngoingCall :one
-- The predicate is that of index_call_sessions_one_ongoing_per_conversation,
-- which serves it and guarantees at most one row.
SELECT * FROM call_sessions WHERE conversation_id = @conversation_id AND status IN (0, 1, 2);

-- name: SaveCall :execrows
UPDATE call_sessions
SET status = @status, started_at = @started_at, ended_at = @ended_at, updated_at = @updated_at
WHERE id = @id;

-- name: CallParticipants :many
SELECT * FROM call_participants WHERE call_session_id = @call_session_id ORDER BY user_id;

-- name: PutCallParticipant :exec
-- Participants carry no times of their own in the domain, so the row's
-- bookkeeping times are the statement's.
INSERT INTO call_participants (call_session_id, user_id, joined_at, left_at, created_at, updated_at)
VALUES (@call_session_id, @user_id, @joined_at, @left_at, statement_timestamp(), statement_timestamp())
ON CONFLICT (call_session_id, user_id) DO UPDATE
SET joined_at = excluded.joined_at, left_at = excluded.left_at, updated_at = excluded.updated_at;

-- name: DueCalls :many
-- index_call_sessions_on_status_and_created_at finds the candidates. Rows
-- another sweeper's transaction holds are skipped rather than waited for,
-- so sweepers running together take different calls.
SELECT id FROM call_sessions
WHERE status IN (0, 1) AND created_at < @created_before
ORDER BY created_at, id
LIMIT @max_calls
FOR UPDATE SKIP LOCKED;

-- name: StaleActiveCalls :many
-- Candidates for ending when everyone has left without hanging up; the
-- transition that ends one locks it, so no lock is taken here.
SELECT id FROM call_sessions
WHERE status = 2 AND updated_at < @updated_before
ORDER BY updated_at, id
LIMIT @max_calls;
