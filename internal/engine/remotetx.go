package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Interactive transactions from any node. A pgwire transaction (BEGIN ..
// COMMIT) that writes on a node that does not lead the database's stream
// would race the leader's node for the stream's next sequence, as a
// single write would (forward.go), and lose its whole transaction to
// every race. So at its first write it moves not to this node's writer
// but to the leader's node: this node sends it that statement with a
// request to begin an ordinary Tx on its own writer (remote), then each
// later statement, describe and savepoint, then the commit or rollback,
// over NATS request/reply on forwardTxSubject+<node>. Everything a Tx keeps holds there: it holds the
// writer, and the idle timeout rolls back a transaction whose origin went
// away.
//
// Only a transaction that writes before it reads moves. One that read
// first read this node's copy, which trails the leader's by the time a
// message takes to arrive: moved, it would have to find the leader's copy
// where its snapshot was, and under a steady stream of commits on the
// leader it seldom would (every try answered 40001). It runs here: its
// commit races the leader's with the expected-sequence check, 40001 when
// it loses.
//
// Failures: a request that gets no answer in time leaves the transaction's
// state unknown. The transaction fails with EUNAVAILABLE, and so does each
// later statement; a commit without an answer may or may not have
// committed, as a forwarded write. A first request that no node takes (the
// leader's node stopped) runs the transaction here instead.

const forwardTxSubject = "hasvc.tx."

// Operations on a remote transaction.
const (
	rtxExec      = "exec"
	rtxDescribe  = "describe"
	rtxSavepoint = "savepoint"
	rtxCommit    = "commit"
	rtxRollback  = "rollback"
)

type rtxRequest struct {
	DB string `json:"db"`
	ID string `json:"id"`
	// Begin: the transaction's first request, which begins it first.
	Begin     bool          `json:"begin,omitempty"`
	Op        string        `json:"op"`
	Stmt      *fwdStatement `json:"stmt,omitempty"`
	Savepoint savepointOp   `json:"savepoint,omitempty"`
	Name      string        `json:"name,omitempty"`
	Describe  string        `json:"describe,omitempty"`
	DryRun    bool          `json:"dry_run,omitempty"`
	Params    change.Values `json:"params,omitempty"`
	Timeout   time.Duration `json:"timeout"`
}

type rtxReply struct {
	fwdReply
	Desc *fwdDescription `json:"desc,omitempty"`
	// Began: the request began the transaction (else the error is why
	// it could not).
	Began bool `json:"began,omitempty"`
}

type fwdDescription struct {
	Columns   []string      `json:"columns"`
	DeclTypes []string      `json:"decl_types"`
	Sample    change.Values `json:"sample,omitempty"`
	Params    []string      `json:"params"`
	ReadOnly  bool          `json:"read_only"`
}

func toFwdDescription(d *sqlite.Description) *fwdDescription {
	return &fwdDescription{Columns: d.Columns, DeclTypes: d.DeclTypes, Sample: d.Sample, Params: d.Params, ReadOnly: d.ReadOnly}
}

func (d *fwdDescription) description() *sqlite.Description {
	return &sqlite.Description{Columns: d.Columns, DeclTypes: d.DeclTypes, Sample: d.Sample, Params: d.Params, ReadOnly: d.ReadOnly}
}

// remoteTx is, on the transaction's origin, its part on the leader's node.
type remoteTx struct {
	node  string
	id    string
	begun bool  // the other node has begun it
	ended bool  // committed or rolled back
	lost  error // a request got no answer: the transaction's state is unknown
}

// toRemote moves t to a transaction on node, which leads the stream. The
// transaction begins there with its first request (sendRemote).
func (t *Tx) toRemote(node string) {
	e := t.d.eng
	t.remote = &remoteTx{node: node, id: e.Node + "." + strconv.FormatUint(e.remoteTxIDs.Add(1), 36)}
}

// sendRemote runs req in the remote transaction. If its first request
// does not begin it, the transaction is no longer remote: it runs on this
// node's writer if no node took the request (the leader's node stopped),
// and fails with the reason the other node gave otherwise.
func (t *Tx) sendRemote(ctx context.Context, req txReq) (txReply, error) {
	rt := t.remote
	rep, err := rt.send(ctx, t.d, req)
	if rt.begun || rt.lost != nil || rt.ended {
		return rep, err
	}
	t.remote = nil
	if !errors.Is(err, errNotForwarded) {
		return rep, err
	}
	if err := t.toLocalWriter(ctx); err != nil {
		return txReply{}, err
	}
	return t.send(ctx, req)
}

// send runs req in the remote transaction, as Tx.send runs it on this
// node's writer.
func (rt *remoteTx) send(ctx context.Context, d *DB, req txReq) (txReply, error) {
	switch {
	case req.rollback && rt.lost != nil && !rt.ended:
		// The other node may still hold the transaction (and the
		// database's writer) until its idle timeout: tell it.
		rt.ended = true
		go rt.abandon(d)
		return txReply{}, nil
	case req.rollback && (rt.ended || !rt.begun):
		rt.ended = true
		return txReply{}, nil
	case rt.lost != nil:
		return txReply{}, rt.lost
	case rt.ended:
		return txReply{}, tenant.Errorf(tenant.EINVALID, "the transaction has ended")
	}
	r := rtxRequest{Op: rtxExec, Begin: !rt.begun}
	switch {
	case req.st != nil:
		fs := toFwdStatement(*req.st)
		r.Stmt = &fs
	case req.savepoint != noSavepoint:
		r.Op, r.Savepoint, r.Name = rtxSavepoint, req.savepoint, req.name
	case req.describe != "":
		r.Op, r.Describe, r.DryRun, r.Params = rtxDescribe, req.describe, req.describeOpts.DryRun, req.describeOpts.Params
	case req.commit:
		r.Op = rtxCommit
	default:
		r.Op = rtxRollback
	}
	if req.commit || req.rollback {
		rt.ended = true
	}
	rep, err := rt.do(ctx, d, r)
	if err == nil && r.Begin {
		if !rep.Began {
			return txReply{}, rep.err()
		}
		rt.begun = true
		d.eng.counters.txRemote.Add(1)
	}
	if err != nil {
		switch {
		case req.rollback:
			return txReply{}, nil // the other node rolls it back by itself
		case r.Begin && errors.Is(err, errNotForwarded):
			return txReply{}, err // run here (sendRemote)
		case errors.Is(err, errTooLargeToForward):
			// Not sent: the transaction goes on without it.
			return txReply{}, tenant.Errorf(tenant.ETOOLARGE, "the statement is larger than a node may send node %s, which runs this transaction", rt.node)
		}
		if r.Begin {
			// No answer: the other node may have begun it after all.
			go rt.abandon(d)
		}
		if errors.Is(err, errNotForwarded) {
			err = tenant.Wrap(tenant.EUNAVAILABLE, err, fmt.Sprintf("node %s, which ran the transaction, stopped: it was rolled back", rt.node))
		} else if req.commit {
			err = tenant.Wrap(tenant.EUNAVAILABLE, err, fmt.Sprintf("the commit went to node %s, which ran the transaction, and no answer came: it may or may not have committed", rt.node))
		}
		rt.lost = err
		return txReply{}, err
	}
	out := txReply{seq: rep.Seq, err: rep.err()}
	if len(rep.Results) > 0 {
		out.res = &fromFwdResults(rep.Results)[0]
	}
	if rep.Desc != nil {
		out.desc = rep.Desc.description()
	}
	if req.commit && out.seq > 0 && d.Stuck() == "" {
		// Read-your-writes on this node, as for a forwarded write.
		wctx, cancel := context.WithTimeout(ctx, d.eng.publishTimeout())
		d.WaitApplied(wctx, out.seq)
		cancel()
	}
	return out, nil
}

// abandon tells the other node to roll the transaction back, if it holds
// it, without waiting long for it to say so.
func (rt *remoteTx) abandon(d *DB) {
	ctx, cancel := context.WithTimeout(context.Background(), d.eng.publishTimeout())
	defer cancel()
	rt.do(ctx, d, rtxRequest{Op: rtxRollback})
}

// do sends one request of the transaction and returns the answer. A
// request without a deadline of its own (a commit) has the statement time
// and the publish timeout.
func (rt *remoteTx) do(ctx context.Context, d *DB, req rtxRequest) (*rtxReply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.statementTime()+d.eng.publishTimeout())
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	req.DB, req.ID, req.Timeout = d.name, rt.id, time.Until(dl)
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg, err := d.eng.request(ctx, forwardTxSubject, rt.node, data)
	if err != nil {
		if req.Begin && (errors.Is(err, errNotAccepted) || errors.Is(err, errNotForwarded) && !errors.Is(err, errTooLargeToForward)) {
			d.leader.Store(&leader{node: rt.node, at: time.Now(), unreachable: true})
		}
		return nil, err
	}
	var rep rtxReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("answer of node %s: %w", rt.node, err)
	}
	return &rep, nil
}

// toFwdStatement is st as a forwarded request carries it.
func toFwdStatement(st sqlite.Statement) fwdStatement {
	fs := fwdStatement{SQL: st.SQL}
	switch p := st.Params.(type) {
	case []any:
		fs.Args = p
	case map[string]any:
		for k, v := range p {
			fs.Names = append(fs.Names, k)
			fs.Args = append(fs.Args, v)
		}
	}
	return fs
}

// statement is the statement fs carries.
func (fs fwdStatement) statement() sqlite.Statement {
	st := sqlite.Statement{SQL: fs.SQL}
	switch {
	case fs.Names != nil:
		named := make(map[string]any, len(fs.Names))
		for j, k := range fs.Names {
			named[k] = fs.Args[j]
		}
		st.Params = named
	case fs.Args != nil:
		st.Params = []any(fs.Args)
	}
	return st
}

// The leader's side.

// servedTxs are the transactions other nodes run on this one, by id.
type servedTxs struct {
	mu  sync.Mutex
	txs map[string]*servedTx
}

// servedTx is one of them. mu keeps its requests one at a time.
type servedTx struct {
	mu sync.Mutex
	tx *Tx
}

func (s *servedTxs) get(id string) *servedTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txs[id]
}

func (s *servedTxs) put(id string, st *servedTx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.txs == nil {
		s.txs = map[string]*servedTx{}
	}
	s.txs[id] = st
}

func (s *servedTxs) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.txs, id)
}

// serveRemoteTx runs a request of a transaction another node forwards.
func (e *Engine) serveRemoteTx(m *nats.Msg) {
	if !e.accept(m) {
		return
	}
	e.forwarding.Add(1)
	go func() {
		defer e.forwarding.Add(-1)
		var rep rtxReply
		var req rtxRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.setErr(fmt.Errorf("forwarded transaction request: %w", err))
		} else if err := e.runRemoteTx(req, &rep); err != nil {
			rep.setErr(err)
		}
		e.respond(m, rep)
	}()
}

// runRemoteTx runs req, of a transaction another node forwards, and puts
// its answer in rep.
func (e *Engine) runRemoteTx(req rtxRequest, rep *rtxReply) error {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if req.Begin {
		// Done a little before its sender gives up on it, so that a
		// transaction its sender no longer waits for does not begin.
		bctx, bcancel := context.WithTimeout(ctx, timeout-min(timeout/10, 500*time.Millisecond))
		err := e.beginRemoteTx(bctx, req)
		bcancel()
		if err != nil {
			return err
		}
		rep.Began = true
	}
	st := e.remoteTxs.get(req.ID)
	if st == nil {
		if req.Op == rtxRollback {
			return nil
		}
		return tenant.Errorf(tenant.ETIMEOUT, "the transaction is no longer open on node %s (idle for longer than %v, or the database closed there); it was rolled back", e.Node, e.txIdleTimeout())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	tx := st.tx
	switch req.Op {
	case rtxExec:
		if req.Stmt == nil {
			return tenant.Errorf(tenant.EINVALID, "no statement")
		}
		res, err := tx.Exec(ctx, req.Stmt.statement())
		if err == nil {
			rep.Results = toFwdResults([]sqlite.Result{*res})
		}
		return err
	case rtxDescribe:
		desc, err := tx.Describe(ctx, req.Describe, sqlite.DescribeOptions{DryRun: req.DryRun, Params: req.Params})
		if err == nil {
			rep.Desc = toFwdDescription(desc)
		}
		return err
	case rtxSavepoint:
		return tx.savepointReq(ctx, req.Savepoint, req.Name)
	case rtxCommit:
		seq, err := tx.Commit(ctx)
		rep.Seq = seq
		return err
	case rtxRollback:
		tx.Rollback()
		return nil
	}
	return tenant.Errorf(tenant.EINVALID, "unknown transaction request %q", req.Op)
}

// beginRemoteTx begins the transaction req asks for, on this node's
// writer, and keeps it until it ends.
func (e *Engine) beginRemoteTx(ctx context.Context, req rtxRequest) error {
	db, release, err := e.Acquire(ctx, req.DB)
	if err != nil {
		return err
	}
	tx := db.Begin(false)
	err = tx.toLocalWriter(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		// Queued for the writer, it may still begin: rolled back then
		// (or, if the writer never takes the rollback, by the idle
		// timeout).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), e.txIdleTimeout())
			defer cancel()
			if tx.Writing() {
				tx.send(ctx, txReq{rollback: true})
			}
			release()
		}()
		return err
	}
	e.remoteTxs.put(req.ID, &servedTx{tx: tx})
	go func() {
		// However it ends: a commit, a rollback, the idle timeout, the
		// database closing.
		<-tx.done
		e.remoteTxs.remove(req.ID)
		release()
	}()
	return nil
}
