package http

import (
	"errors"
	"log/slog"
	nethttp "net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core"
)

// statusOf is the one place where error kinds become HTTP statuses.
var statusOf = map[core.Kind]int{
	core.Internal:        nethttp.StatusInternalServerError,
	core.Invalid:         nethttp.StatusUnprocessableEntity,
	core.Unauthenticated: nethttp.StatusUnauthorized,
	core.Forbidden:       nethttp.StatusForbidden,
	core.NotFound:        nethttp.StatusNotFound,
	core.Conflict:        nethttp.StatusConflict,
	core.RateLimited:     nethttp.StatusTooManyRequests,
	core.Unavailable:     nethttp.StatusServiceUnavailable,
}

// Fixed messages for kinds whose detail is not for clients, or whose wording
// the web client already knows.
var messageOf = map[core.Kind]string{
	core.Internal:        "Internal server error",
	core.Unauthenticated: "You need to sign in or sign up before continuing.",
	core.Forbidden:       "Not authorized",
	core.NotFound:        "Not found",
	core.Unavailable:     "Service temporarily unavailable, please retry",
}

// errorBody is the shape of every error response but 422, which lists errors.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
	// RetryAfter repeats the Retry-After header of a 429 for clients that
	// read only the body.
	RetryAfter int `json:"retry_after,omitempty"`
}

type errorsBody struct {
	Errors []string `json:"errors"`
}

// handleError renders err as JSON. It is echo's HTTPErrorHandler, so errors
// from routing, binding and middleware take the same path as domain errors.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := s.render(err, c)
	if c.Request().Method == nethttp.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, body)
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "writing error response", "err", err)
	}
}

func (s *Server) render(err error, c echo.Context) (int, any) {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := nethttp.StatusText(he.Code)
		switch he.Code {
		case nethttp.StatusNotFound:
			msg = messageOf[core.NotFound]
		case nethttp.StatusRequestEntityTooLarge:
			msg = "Request body too large"
		case nethttp.StatusMethodNotAllowed:
			msg = "Method not allowed"
		default:
			if m, ok := he.Message.(string); ok && he.Code < 500 {
				msg = m
			}
		}
		if he.Code >= 500 {
			s.log.ErrorContext(c.Request().Context(), "http error", "status", he.Code, "err", he.Error())
		}
		return he.Code, errorBody{Error: msg}
	}
	var ce *core.Error
	if !errors.As(err, &ce) {
		ce = &core.Error{Kind: core.Internal, Err: err}
	}
	status, ok := statusOf[ce.Kind]
	if !ok {
		status = nethttp.StatusInternalServerError
	}
	switch ce.Kind {
	case core.Invalid:
		// Validation failures list every problem; a rule about the state of
		// a thing ("Call is no longer ringing") is one error, as the contract shapes it.
		if len(ce.Details) == 0 {
			return status, errorBody{Error: ce.Message}
		}
		return status, errorsBody{Errors: ce.Details}
	case core.RateLimited:
		// Retry-After 0 would invite an immediate retry that is denied again.
		secs := max(ce.RetryAfterSeconds, 1)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return status, errorBody{Error: "rate_limited", Message: ce.Message, RetryAfter: secs}
	case core.Internal, core.Unavailable:
		level := slog.LevelError
		if ce.Kind == core.Unavailable {
			level = slog.LevelWarn
		}
		s.log.Log(c.Request().Context(), level, "request failed", "kind", ce.Kind.String(), "path", c.Request().URL.Path, "err", err)
		return status, errorBody{Error: messageOf[ce.Kind]}
	case core.NotFound, core.Forbidden:
		return status, errorBody{Error: messageOf[ce.Kind]}
	}
	msg := ce.Message
	if msg == "" {
		msg = messageOf[ce.Kind]
	}
	return status, errorBody{Error: msg}
}
