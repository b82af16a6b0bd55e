package pg

// Transaction blocks: BEGIN..COMMIT holds one engine transaction (taken
// at the block's first statement) and savepoints inside it.

import (
	"context"
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
	ss.tx, ss.txRelease = db.Begin(ss.readOnly), release
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
	ss.inTx, ss.implicit, ss.txFailed = false, false, false
	return err
}
