package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/sqlite"
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
	stateCantChange         = "55P02"
	stateOutOfRange         = "22003"
	stateUndefinedParam     = "42704"
	stateDupPrepared        = "42P05"
	stateDupCursor          = "42P03"
	stateUndefinedPrepared  = "26000"
	stateUndefinedCursor    = "34000"
	stateIdleSession        = "57P05"
	stateIdleInTx           = "25P03"
	stateInternal           = "XX000"
	stateReadOnlyTx         = "25006"
	stateDiskFull           = "53100"
	stateBadCopy            = "22P04"
)

// kindStates maps each kind of statement error to its SQLSTATE.
var kindStates = map[sqlite.Kind]string{
	sqlite.KindSyntax:          stateSyntax,
	sqlite.KindMultiple:        stateSyntax,
	sqlite.KindParams:          stateProtocolViolation,
	sqlite.KindNoTable:         stateUndefinedTable,
	sqlite.KindNoColumn:        stateUndefinedColumn,
	sqlite.KindNoFunction:      stateUndefinedFunction,
	sqlite.KindNoObject:        stateUndefinedObject,
	sqlite.KindTableExists:     stateDuplicateTable,
	sqlite.KindObjectExists:    stateDuplicateObject,
	sqlite.KindAmbiguousColumn: stateAmbiguousColumn,
	sqlite.KindUnique:          stateUnique,
	sqlite.KindNotNull:         stateNotNull,
	sqlite.KindForeignKey:      stateForeignKey,
	sqlite.KindCheck:           stateCheck,
	sqlite.KindConstraint:      stateIntegrity,
	sqlite.KindMismatch:        stateDatatypeMismatch,
	sqlite.KindRefused:         stateInsufficientPriv,
	sqlite.KindReadOnly:        stateReadOnlyTx,
	sqlite.KindInterrupted:     stateQueryCanceled,
	sqlite.KindTooBig:          stateProgramLimit,
	sqlite.KindBusy:            stateUnavailable,
	sqlite.KindFull:            stateDiskFull,
	sqlite.KindQuota:           stateDiskFull,
}

// codeStates maps hasvc's error codes to SQLSTATEs, for errors that are
// not about a statement's SQL.
var codeStates = map[string]string{
	tenant.ECONFLICT:     stateSerialization,
	tenant.ETIMEOUT:      stateQueryCanceled,
	tenant.ETOOMANY:      stateTooManyConnections,
	tenant.EFORBIDDEN:    stateInsufficientPriv,
	tenant.ETOOLARGE:     stateProgramLimit,
	tenant.EUNAVAILABLE:  stateUnavailable,
	tenant.ENOTFOUND:     stateUnknownDatabase,
	tenant.EUNAUTHORIZED: stateInvalidPassword,
	tenant.EINTERNAL:     stateInternal,
	tenant.EINVALID:      stateSyntax,
}

// sqlstate maps any error of a statement to its SQLSTATE: the one mapping
// from hasvc's and SQLite's errors to PostgreSQL's codes. It reads types
// and codes, never messages.
func sqlstate(err error) string {
	var pe *pgError
	if errors.As(err, &pe) {
		return pe.code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return stateQueryCanceled
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if code, ok := kindStates[se.Kind]; ok {
			return code
		}
	}
	if code, ok := codeStates[tenant.ErrorCode(err)]; ok {
		return code
	}
	return stateInternal
}

// errorResponse builds the ErrorResponse for err.
func errorResponse(err error) *pgproto3.ErrorResponse {
	severity := "ERROR"
	var pe *pgError
	if errors.As(err, &pe) && pe.fatal {
		severity = "FATAL"
	}
	// A message the client sees is hasvc's own words: the wire layer's,
	// or a tenant error's. Any other error is a bug, logged where the
	// session handles it.
	msg := "internal error"
	if pe != nil {
		msg = pe.message
	} else if te := (*tenant.Error)(nil); errors.As(err, &te) {
		msg = te.Message
	}
	if errors.Is(err, context.Canceled) {
		msg = "canceling statement due to user request"
	} else if errors.Is(err, context.DeadlineExceeded) {
		msg = "canceling statement due to statement timeout"
	}
	var where string
	if ce := (*contextError)(nil); errors.As(err, &ce) {
		where = ce.where
	}
	return &pgproto3.ErrorResponse{
		Severity:            severity,
		SeverityUnlocalized: severity,
		Code:                sqlstate(err),
		Message:             msg,
		Where:               where,
	}
}

// contextError is an error with where it happened (the ErrorResponse's
// Where: psql prints it as CONTEXT).
type contextError struct {
	err   error
	where string
}

func (e *contextError) Error() string { return e.err.Error() + " (" + e.where + ")" }
func (e *contextError) Unwrap() error { return e.err }

// withContext adds where err happened.
func withContext(err error, where string) error { return &contextError{err, where} }
