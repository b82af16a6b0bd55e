// Package tenant is the leaf of hasvc: database names, per-database
// configuration and the errors every other package speaks. It imports
// nothing of hasvc's and nothing of NATS.
package tenant

import (
	"errors"
	"fmt"
)

// Error codes. Each adapter translates them in one place: api to HTTP
// statuses, pg to SQLSTATEs.
const (
	EINVALID      = "EINVALID"      // bad input: malformed request, SQL error
	ENOTFOUND     = "ENOTFOUND"     // unknown database
	ECONFLICT     = "ECONFLICT"     // name taken, concurrent write won
	EUNAUTHORIZED = "EUNAUTHORIZED" // no or invalid credential
	EFORBIDDEN    = "EFORBIDDEN"    // credential lacks the scope
	ETOOLARGE     = "ETOOLARGE"     // request or result over a limit
	EUNAVAILABLE  = "EUNAVAILABLE"  // replication (JetStream) unavailable
	ETIMEOUT      = "ETIMEOUT"      // waited too long (read sequence, statement time)
	ETOOMANY      = "ETOOMANY"      // too many requests or connections at once for a database or token
	EINTERNAL     = "EINTERNAL"     // a bug or an unexpected failure
)

// Error is an error with a stable machine-readable code and a message meant
// for the user. Statement is the index of the failing statement of a request,
// or -1 when the error is not about one statement.
type Error struct {
	Code      string
	Message   string
	Statement int
	Err       error // the underlying cause, if any; never shown to users verbatim
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Statement >= 0 {
		return fmt.Sprintf("%s: statement %d: %s", e.Code, e.Statement, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Statement: -1}
}

// Wrap returns an *Error with the given code whose message is msg and whose
// cause is err.
func Wrap(code string, err error, msg string) *Error {
	return &Error{Code: code, Message: msg, Statement: -1, Err: err}
}

// AtStatement returns a copy of err (an *Error, or any error as EINTERNAL,
// whose text stays in the cause for the log) that names statement i.
func AtStatement(err error, i int) *Error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Statement = i
		return &c
	}
	return &Error{Code: EINTERNAL, Message: "internal error", Statement: i, Err: err}
}

// ErrorCode returns the code of err, EINTERNAL for errors that carry none,
// and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err. Errors without a code
// are internal, and their text is not shown.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	}
	return "internal error"
}

// ErrorStatement returns the statement index carried by err, or -1.
func ErrorStatement(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Statement
	}
	return -1
}
