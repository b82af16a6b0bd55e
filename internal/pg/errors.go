package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// pgError is an error with its SQLSTATE, raised by the wire layer itself.
type pgError struct {
	code    string
	message string
	fatal   bool
}

func (e *pgError) Error() string { return e.message }

func errorf(code, format string, args ...any) *pgError {
	return &pgError{code: code, message: fmt.Sprintf(format, args...)}
}

func fatalf(code, format string, args ...any) *pgError {
	return &pgError{code: code, message: fmt.Sprintf(format, args...), fatal: true}
}

// SQLSTATEs hasvc sends.
const (
	stateSyntax             = "42601"
	stateUndefinedTable     = "42P01"
	stateUndefinedColumn    = "42703"
	stateUndefinedFunction  = "42883"
	stateDuplicateTable     = "42P07"
	stateDuplicateObject    = "42710"
	stateAmbiguousColumn    = "42702"
	stateUndefinedObject    = "42704"
	stateInsufficientPriv   = "42501"
	stateUnique             = "23505"
	stateNotNull            = "23502"
	stateForeignKey         = "23503"
	stateCheck              = "23514"
	stateIntegrity          = "23000"
	stateDatatypeMismatch   = "42804"
	stateInvalidText        = "22P02"
	stateQueryCanceled      = "57014"
	stateSerialization      = "40001"
	stateTooManyConnections = "53300"
	stateProgramLimit       = "54000"
	stateInFailedTx         = "25P02"
	stateActiveTx           = "25001"
	stateNoActiveTx         = "25P01"
	stateInvalidSavepoint   = "3B001"
	stateInvalidPassword    = "28P01"
	stateInvalidAuthSpec    = "28000"
	stateUnknownDatabase    = "3D000"
	stateProtocolViolation  = "08P01"
	stateFeatureNotSupp     = "0A000"
	stateUnavailable        = "55000"
	stateInvalidParamValue  = "22023"
	stateUndefinedParam     = "42704"
	stateDupPrepared        = "42P05"
	stateDupCursor          = "42P03"
	stateUndefinedPrepared  = "26000"
	stateUndefinedCursor    = "34000"
	stateIdleSession        = "57P05"
	stateInternal           = "XX000"
)

// SQLite extended result codes of constraint failures.
const (
	sqliteConstraint           = 19
	sqliteConstraintCheck      = 275
	sqliteConstraintForeignKey = 787
	sqliteConstraintNotNull    = 1299
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
	sqliteMismatch             = 20
)

// sqlstate maps any error of a statement to its SQLSTATE: the one mapping
// from hasvc's and SQLite's errors to PostgreSQL's codes.
func sqlstate(err error) string {
	var pe *pgError
	if errors.As(err, &pe) {
		return pe.code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return stateQueryCanceled
	}
	var se *engine.SQLiteError
	if errors.As(err, &se) {
		switch se.Code {
		case sqliteConstraintUnique, sqliteConstraintPrimaryKey:
			return stateUnique
		case sqliteConstraintNotNull:
			return stateNotNull
		case sqliteConstraintForeignKey:
			return stateForeignKey
		case sqliteConstraintCheck:
			return stateCheck
		}
		switch se.Primary() {
		case sqliteConstraint:
			return stateIntegrity
		case sqliteMismatch:
			return stateDatatypeMismatch
		}
		if code := messageState(se.Message); code != "" {
			return code
		}
	}
	switch tenant.ErrorCode(err) {
	case tenant.ECONFLICT:
		return stateSerialization
	case tenant.ETIMEOUT:
		return stateQueryCanceled
	case tenant.EFORBIDDEN:
		return stateInsufficientPriv
	case tenant.ETOOLARGE:
		return stateProgramLimit
	case tenant.EUNAVAILABLE:
		return stateUnavailable
	case tenant.ENOTFOUND:
		return stateUnknownDatabase
	case tenant.EUNAUTHORIZED:
		return stateInvalidPassword
	case tenant.EINTERNAL:
		return stateInternal
	case tenant.EINVALID:
		if code := messageState(tenant.ErrorMessage(err)); code != "" {
			return code
		}
		return stateSyntax
	}
	return stateInternal
}

// messageState reads the SQLSTATE from SQLite's message for errors whose
// result code is the generic SQLITE_ERROR.
func messageState(msg string) string {
	switch {
	case strings.Contains(msg, "syntax error"), strings.Contains(msg, "incomplete input"),
		strings.Contains(msg, "unrecognized token"):
		return stateSyntax
	case strings.HasPrefix(msg, "no such table"), strings.HasPrefix(msg, "no such view"):
		return stateUndefinedTable
	case strings.HasPrefix(msg, "no such column"), strings.Contains(msg, "has no column named"):
		return stateUndefinedColumn
	case strings.HasPrefix(msg, "no such function"), strings.HasPrefix(msg, "wrong number of arguments to function"):
		return stateUndefinedFunction
	case strings.HasPrefix(msg, "table") && strings.HasSuffix(msg, "already exists"),
		strings.HasPrefix(msg, "view") && strings.HasSuffix(msg, "already exists"):
		return stateDuplicateTable
	case strings.HasSuffix(msg, "already exists"):
		return stateDuplicateObject
	case strings.HasPrefix(msg, "ambiguous column name"):
		return stateAmbiguousColumn
	case strings.HasPrefix(msg, "no such index"), strings.HasPrefix(msg, "no such trigger"):
		return stateUndefinedObject
	case strings.Contains(msg, "cannot insert multiple commands"):
		return stateSyntax
	case strings.HasPrefix(msg, "statement has") || strings.HasPrefix(msg, "param"):
		return stateProtocolViolation
	}
	return ""
}

// errorResponse builds the ErrorResponse for err.
func errorResponse(err error) *pgproto3.ErrorResponse {
	severity := "ERROR"
	var pe *pgError
	if errors.As(err, &pe) && pe.fatal {
		severity = "FATAL"
	}
	msg := err.Error()
	if te := (*tenant.Error)(nil); errors.As(err, &te) {
		msg = te.Message
	}
	if errors.Is(err, context.Canceled) {
		msg = "canceling statement due to user request"
	} else if errors.Is(err, context.DeadlineExceeded) {
		msg = "canceling statement due to statement timeout"
	}
	return &pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                sqlstate(err),
		Message:             msg,
	}
}
