// Package core holds what every domain package shares: the error kinds that
// ports translate to HTTP statuses and WebSocket replies in one place each.
package core

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind uint8

// The kinds. The zero value is Internal, so an unclassified error is never
// mistaken for the caller's fault.
const (
	Internal        Kind = iota // a bug or an unexpected failure; details are logged, never shown
	Invalid                     // the input breaks a rule; Error.Details lists each problem
	Unauthenticated             // no valid credentials
	Forbidden                   // authenticated, but not allowed
	NotFound                    // no such thing, or the caller may not know it exists
	Conflict                    // the state forbids it (duplicate, already ended, ...)
	RateLimited                 // too many requests; Error.RetryAfter says when to retry
	Unavailable                 // a dependency (database, Redis) is down; retry later
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "forbidden", "not_found", "conflict", "rate_limited", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is a classified error. Message is safe to show to clients for every
// kind except Internal; Err keeps the cause for logs.
type Error struct {
	Kind    Kind
	Message string
	// Details are human-readable full messages ("Email can't be blank") for Invalid.
	Details []string
	// RetryAfterSeconds is set for RateLimited.
	RetryAfterSeconds int
	Err               error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && len(e.Details) > 0 {
		msg = e.Details[0]
	}
	if e.Err != nil {
		if msg == "" {
			return fmt.Sprintf("%s: %v", e.Kind, e.Err)
		}
		return fmt.Sprintf("%s: %s: %v", e.Kind, msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an Error of kind k with a client-safe message.
func E(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

// Wrap builds an Error of kind k around a cause that is logged but not shown.
func Wrap(k Kind, msg string, err error) *Error { return &Error{Kind: k, Message: msg, Err: err} }

// InvalidDetails builds an Invalid error from full messages.
func InvalidDetails(details ...string) *Error {
	return &Error{Kind: Invalid, Details: details}
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is classified as kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
