package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"hasvc/internal/tenant"
)

// Kind classifies an error of a statement, so that each adapter maps it in
// one place (pg to a SQLSTATE, api through the tenant code) without
// reading its message.
type Kind int

// Kinds of statement errors.
const (
	KindOther           Kind = iota // any other SQL error
	KindSyntax                      // the SQL does not parse, or is empty
	KindMultiple                    // several statements where one is expected
	KindParams                      // the parameters given do not fit the statement
	KindNoTable                     // no such table or view
	KindNoColumn                    // no such column
	KindNoFunction                  // no such function, or wrong number of arguments
	KindNoObject                    // no such index or trigger
	KindTableExists                 // a table or view of that name exists
	KindObjectExists                // an index or trigger of that name exists
	KindAmbiguousColumn             // a column name matches several tables
	KindUnique                      // UNIQUE or PRIMARY KEY constraint failed
	KindNotNull                     // NOT NULL constraint failed
	KindForeignKey                  // FOREIGN KEY constraint failed
	KindCheck                       // CHECK constraint failed
	KindConstraint                  // another constraint failed
	KindMismatch                    // datatype mismatch
	KindRefused                     // the sandbox refused the statement; the message says what
	KindReadOnly                    // a write on a read-only connection
	KindInterrupted                 // interrupted: cancelled or out of time
	KindTooBig                      // a string, blob, row or statement over a limit
	KindBusy                        // the database is locked
	KindFull                        // the disk is full
	KindQuota                       // the database is at its size limit (max_size)
)

// Error is an error of a statement: one reported by SQLite, with its
// extended result code, or one this package raises about the statement.
type Error struct {
	Code    int  // SQLite's extended result code (0 if SQLite did not raise it); Code&0xff is the primary code
	Kind    Kind // what went wrong, for the adapters
	Message string
}

func (e *Error) Error() string { return e.Message }

// Primary returns the primary result code.
func (e *Error) Primary() int { return e.Code & 0xff }

// SQLite's primary and extended result codes classified here (sqlite3.h).
const (
	codeError      = 1
	codeBusy       = 5
	codeReadOnly   = 8
	codeInterrupt  = 9
	codeFull       = 13
	codeTooBig     = 18
	codeConstraint = 19
	codeMismatch   = 20
	codeAuth       = 23
	codeRange      = 25
	codeCheck      = 275
	codeForeignKey = 787
	codeNotNull    = 1299
	codePrimaryKey = 1555
	codeUnique     = 2067
)

// newError returns the Error for a result code and SQLite's message.
func newError(code int, msg string) *Error {
	return &Error{Code: code, Kind: classify(code, msg), Message: msg}
}

// statementError returns an Error this package raises about a statement.
func statementError(kind Kind, msg string) *Error {
	return &Error{Kind: kind, Message: msg}
}

// classify returns the kind of an error from its result code. SQLite
// reports most SQL errors with the generic SQLITE_ERROR and says which in
// its message only: this is the one place that reads it, and the tests
// pin each message to its kind.
func classify(code int, msg string) Kind {
	switch code {
	case codeUnique, codePrimaryKey:
		return KindUnique
	case codeNotNull:
		return KindNotNull
	case codeForeignKey:
		return KindForeignKey
	case codeCheck:
		return KindCheck
	}
	switch code & 0xff {
	case codeConstraint:
		return KindConstraint
	case codeMismatch:
		return KindMismatch
	case codeAuth:
		return KindRefused
	case codeReadOnly:
		return KindReadOnly
	case codeInterrupt:
		return KindInterrupted
	case codeTooBig:
		return KindTooBig
	case codeBusy:
		return KindBusy
	case codeFull:
		return KindFull
	case codeError:
	default:
		return KindOther
	}
	switch {
	case strings.Contains(msg, "syntax error"), strings.Contains(msg, "incomplete input"),
		strings.Contains(msg, "unrecognized token"):
		return KindSyntax
	case strings.HasPrefix(msg, "no such table"), strings.HasPrefix(msg, "no such view"):
		return KindNoTable
	case strings.HasPrefix(msg, "no such column"), strings.Contains(msg, "has no column named"):
		return KindNoColumn
	case strings.HasPrefix(msg, "no such function"), strings.HasPrefix(msg, "wrong number of arguments to function"):
		return KindNoFunction
	case strings.HasPrefix(msg, "no such index"), strings.HasPrefix(msg, "no such trigger"):
		return KindNoObject
	case (strings.HasPrefix(msg, "table") || strings.HasPrefix(msg, "view")) && strings.HasSuffix(msg, "already exists"):
		return KindTableExists
	case strings.HasSuffix(msg, "already exists"):
		return KindObjectExists
	case strings.HasPrefix(msg, "ambiguous column name"):
		return KindAmbiguousColumn
	case strings.HasPrefix(msg, "not authorized"):
		return KindRefused
	}
	return KindOther
}

// tenantError turns an error of a tenant's statement into a tenant error
// whose cause is the *Error, so adapters can map its Kind.
func (c *Conn) tenantError(ctx context.Context, err error) error {
	var se *Error
	if !errors.As(err, &se) {
		return err
	}
	if se.Kind == KindFull && c.maxPages > 0 {
		// SQLite says SQLITE_FULL both for max_page_count and for a
		// full disk; with a limit set, the limit is by far the likelier.
		se.Kind = KindQuota
		se.Message = fmt.Sprintf("the write would take the database past its size limit (max_size %d bytes)", c.maxSize)
	}
	switch se.Kind {
	case KindQuota:
		return tenant.Wrap(tenant.ETOOLARGE, err, se.Message)
	case KindInterrupted:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || c.pastDeadline() {
			return tenant.Wrap(tenant.ETIMEOUT, err, "statement timed out")
		}
		return tenant.Wrap(tenant.ETIMEOUT, err, "statement interrupted")
	case KindRefused:
		return tenant.Wrap(tenant.EFORBIDDEN, err, se.Message)
	case KindTooBig:
		return tenant.Wrap(tenant.ETOOLARGE, err, se.Message)
	case KindBusy, KindFull:
		return tenant.Wrap(tenant.EUNAVAILABLE, err, se.Message)
	}
	return tenant.Wrap(tenant.EINVALID, err, se.Message)
}
