package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/chatterly/chatterly/core"
)

// codeUniqueViolation is the SQLSTATE of a duplicate key.
const codeUniqueViolation = "23505"

// translate classifies a pgx error as a core error: NotFound for no rows,
// Conflict for a duplicate key, Unavailable when the server cannot be
// reached or is shutting down, Internal (keeping the cause for the logs)
// for the rest. Every method of the package returns what it returns, so
// that callers see kinds, never pgx.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Wrap(core.NotFound, "Not found", err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeUniqueViolation:
			return core.Wrap(core.Conflict, "Already exists", err)
		case unavailableCode(pgErr.Code):
			return core.Wrap(core.Unavailable, "database unavailable", err)
		}
		return core.Wrap(core.Internal, "", err)
	}
	if unreachable(err) {
		return core.Wrap(core.Unavailable, "database unavailable", err)
	}
	return core.Wrap(core.Internal, "", err)
}

// unavailableCode reports whether a server error means that the server
// cannot serve now (connection exceptions, shutdown, start-up, a lost
// deadlock) rather than that the statement is wrong.
func unavailableCode(code string) bool {
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		// A transaction that lost a deadlock or a serialization race did
		// nothing; the client may simply retry (503), unlike after a bug (500).
		"40P01", // deadlock_detected
		"40001": // serialization_failure
		return true
	}
	return len(code) == 5 && code[:2] == "08" // connection_exception
}

// unreachable reports whether err is a failure to reach the server: no
// connection could be made, the connection broke, or none came free from
// the pool before the deadline.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, puddle.ErrClosedPool)
}
