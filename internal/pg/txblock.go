package pg

// Transaction blocks: BEGIN..COMMIT holds one engine transaction (taken
// at the block's first statement) and savepoints inside it.

import (
	"context"
	"strings"

	"hasvc/internal/tenant"
)

// savepoint answers SAVEPOINT, RELEASE [SAVEPOINT] and ROLLBACK TO
// [SAVEPOINT]. ROLLBACK TO also ends the failed state of a block, as in
// PostgreSQL (psql's ON_ERROR_ROLLBACK and ORMs' nested transactions rely
// on it).
func (ss *session) savepoint(ctx context.Context, p *prepared) (*outcome, error) {
	verb := p.verb[0]
	if p.kind == kindRollbackTo {
		verb = "ROLLBACK TO SAVEPOINT"
	}
	if !ss.inTx || ss.implicit {
		return nil, errorf(stateNoActiveTx, "%s can only be used in transaction blocks", verb)
	}
	ws := words(p.sql)
	name := identName(ws[len(ws)-1].text)
	if err := ss.beginTx(ctx); err != nil {
		return nil, err
	}
	var err error
	tag := verb
	switch p.kind {
	case kindSavepoint:
		err = ss.tx.Savepoint(ctx, name)
	case kindRelease:
		err = ss.tx.Release(ctx, name)
	default:
		tag = "ROLLBACK"
		if err = ss.tx.RollbackTo(ctx, name); err == nil {
			ss.txFailed = false
		}
	}
	if tenant.ErrorCode(err) == tenant.ENOTFOUND {
		return nil, errorf(stateInvalidSavepoint, "savepoint %q does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	return &outcome{tag: tag}, nil
}

// beginTx takes the database and starts the engine's transaction at the
// first statement of a block.
func (ss *session) beginTx(ctx context.Context) error {
	if ss.tx != nil {
		return nil
	}
	db, release, err := ss.srv.DB.Acquire(ctx, ss.db)
	if err != nil {
		return err
	}
	if err := ss.waitMinSeq(ctx, db); err != nil {
		release()
		return err
	}
	ss.tx, ss.txRelease = db.Begin(ss.readOnlyNow()), release
	return nil
}

// endTx ends the transaction block, committing if commit.
func (ss *session) endTx(commit bool) error {
	var err error
	if ss.tx != nil {
		if commit {
			ctx, done := ss.statementContext()
			var seq uint64
			seq, err = ss.tx.Commit(ctx)
			done()
			if err == nil {
				ss.committed(seq)
			}
			if err != nil {
				ss.tx.Rollback()
			}
		} else {
			ss.tx.Rollback()
		}
		ss.txRelease()
		ss.tx, ss.txRelease = nil, nil
	}
	ss.inTx, ss.implicit, ss.txFailed, ss.txReadOnly = false, false, false, false
	return err
}

// readOnlyNow reports whether the statement about to run may only read:
// the token may only read, or the transaction block is READ ONLY, or,
// outside a block, default_transaction_read_only is on.
func (ss *session) readOnlyNow() bool {
	switch {
	case ss.readOnly:
		return true
	case ss.inTx && !ss.implicit:
		return ss.txReadOnly
	}
	return isOn(ss.settings["default_transaction_read_only"])
}

// readOnlyError turns the engine's refusal of a write into PostgreSQL's
// 25006 when the transaction, not the token, is read-only.
func (ss *session) readOnlyError(err error) error {
	if err == nil || ss.readOnly || !ss.readOnlyNow() || tenant.ErrorCode(err) != tenant.EFORBIDDEN {
		return err
	}
	return errorf(stateReadOnlyTx, "cannot execute a statement that writes in a read-only transaction")
}

// setTxReadOnly serves SET TRANSACTION READ ONLY / READ WRITE (and SET
// transaction_read_only): the block's access mode, which the engine's
// transaction takes at its first statement.
func (ss *session) setTxReadOnly(ro bool) (*outcome, error) {
	out := &outcome{tag: "SET"}
	if !ss.inTx || ss.implicit {
		out.notice, out.noticeCode = "SET TRANSACTION can only be used in transaction blocks", stateNoActiveTx
		return out, nil
	}
	if ss.tx != nil && ro != ss.txReadOnly {
		return nil, errorf(stateActiveTx, "transaction access mode must be set before any query (hasvc also takes it at BEGIN)")
	}
	ss.txReadOnly = ro
	return out, nil
}

// accessMode finds READ ONLY or READ WRITE among the words of a BEGIN,
// START TRANSACTION or SET TRANSACTION; given is false if neither is
// there.
func accessMode(toks []token) (readOnly, given bool) {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].is("READ") {
			switch {
			case toks[i+1].is("ONLY"):
				readOnly, given = true, true
			case toks[i+1].is("WRITE"):
				readOnly, given = false, true
			}
		}
	}
	return readOnly, given
}

// isOn reports whether a boolean setting's value is true.
func isOn(v string) bool {
	switch strings.ToLower(strings.Trim(v, `'"`)) {
	case "on", "true", "yes", "1", "t", "y":
		return true
	}
	return false
}
