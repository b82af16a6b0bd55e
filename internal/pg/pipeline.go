package pg

import (
	"context"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
)

// A pipeline is the Executes a client sends between two Syncs outside a
// transaction block. PostgreSQL runs them as one implicit transaction (a
// pgx batch, JDBC's executeBatch): all commit or none. hasvc holds each
// Execute of a statement that writes, and every Execute after it, until
// Sync (or Flush), and then runs them together as one transaction, like an
// HTTP request of several statements: one commit, one message. The answers
// to the messages in between (ParseComplete, BindComplete, descriptions)
// wait in order behind the results they follow. Reads alone run at once.

// pipeline is the held part of the current pipeline.
type pipeline struct {
	steps  []pipeStep
	stmts  []sqlite.Statement
	failed bool // an error came after the held Executes: none of them runs
}

// pipeStep is an answer to send, or (pt non-nil) the results of a held
// Execute: statement n of the pipeline's transaction.
type pipeStep struct {
	msg pgproto3.BackendMessage
	pt  *portal
	n   int
}

// deferrable reports whether an Execute of p would be held: p is SQL, no
// transaction block is open, and p writes or something before it is held.
func (ss *session) deferrable(p *prepared) bool {
	if p.kind != kindSQL || ss.inTx || p.desc == nil {
		return false
	}
	return ss.pipe != nil || !p.desc.ReadOnly
}

// deferExecute holds an Execute of pt until Sync.
func (ss *session) deferExecute(pt *portal) {
	if ss.pipe == nil {
		ss.pipe = &pipeline{}
	}
	st := sqlite.Statement{SQL: pt.stmt.run}
	if len(pt.params) > 0 {
		st.Params = pt.params
	}
	ss.pipe.steps = append(ss.pipe.steps, pipeStep{pt: pt, n: len(ss.pipe.stmts)})
	ss.pipe.stmts = append(ss.pipe.stmts, st)
}

// runPipeline runs the held Executes as one transaction and sends, in
// order, every answer that waited. If a statement fails, nothing commits:
// the error takes the place of the first held result, and the messages
// after it count as skipped until Sync.
func (ss *session) runPipeline() {
	p := ss.pipe
	ss.pipe = nil
	var res *engine.ExecResult
	var err error
	if !p.failed && len(p.stmts) > 0 {
		ctx, done := ss.statementContext()
		res, err = ss.execPipeline(ctx, p.stmts)
		done()
	}
	for _, step := range p.steps {
		switch {
		case step.pt == nil:
			ss.be.Send(step.msg)
		case p.failed:
			// The error that aborted the pipeline is further on.
		case err != nil:
			ss.be.Send(ss.errorResponse(err))
			ss.skipToSync = true
			return
		default:
			step.pt.out = ss.outcome(step.pt.stmt, &res.Results[step.n])
			if err := ss.sendOutcome(step.pt, 0); err != nil {
				ss.be.Send(ss.errorResponse(err))
				ss.skipToSync = true
				return
			}
		}
	}
}

// execPipeline runs the statements of a pipeline as one implicit
// transaction, and reports the sequence of what it committed.
func (ss *session) execPipeline(ctx context.Context, stmts []sqlite.Statement) (*engine.ExecResult, error) {
	if ss.scratch != nil {
		results, err := ss.scratchRun(ctx, stmts)
		if err != nil {
			return nil, err
		}
		return &engine.ExecResult{Results: results}, nil
	}
	db, release, err := ss.srv.DB.Acquire(ctx, ss.db)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := db.Exec(ctx, stmts, ss.execOptions(ss.readOnlyNow()))
	if err != nil {
		return nil, err
	}
	ss.committed(res.Seq)
	return res, nil
}
