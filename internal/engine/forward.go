package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Writes from any node. In a cluster, every node that takes a write for a
// strong-mode database would race the others for the stream's next
// sequence; losers roll back, catch up and run again, and under load (or
// link latency) a node far from the stream leader can lose every race.
// So a node forwards a write request to the node that leads the
// database's stream, over NATS request/reply on forwardSubject+<node>
// (the global account, which only nodes can use), and answers its client
// with that node's answer. The leader's node runs the request as its own,
// through the same commit path; optimistic concurrency stays as the
// safety net while leadership moves. pgwire's interactive transactions
// move there at their first write (remotetx.go); reads, imports and
// eventual-mode writes run where they arrive.
//
// A forwarded request is not retried once it may have reached the
// leader: if no answer comes, the client gets EUNAVAILABLE, as it would
// if its connection to a node broke, and cannot know whether the write
// committed. A request no node listened to (the leader's node just
// stopped) runs here instead.

const forwardSubject = "hasvc.exec."

// leaderFresh is how long a known stream leader is used before it is
// asked again (in the background; requests keep forwarding meanwhile).
const leaderFresh = 2 * time.Second

// maxForwarded bounds the forwarded requests a node runs at once.
const maxForwarded = 4096

type fwdStatement struct {
	SQL   string        `json:"sql"`
	Args  change.Values `json:"args,omitempty"`
	Names []string      `json:"names,omitempty"` // named parameters: Names[i] is Args[i]
}

type fwdRequest struct {
	DB      string         `json:"db"`
	Stmts   []fwdStatement `json:"stmts"`
	Timeout time.Duration  `json:"timeout"`       // what is left of the caller's deadline
	Key     string         `json:"key,omitempty"` // idempotency key (idempotency.go)
}

type fwdResult struct {
	Columns      []string        `json:"columns,omitempty"`
	DeclTypes    []string        `json:"decl_types,omitempty"`
	Rows         []change.Values `json:"rows,omitempty"`
	RowsAffected int64           `json:"rows_affected,omitempty"`
	LastInsertID int64           `json:"last_insert_id,omitempty"`
}

type fwdReply struct {
	Results   []fwdResult `json:"results,omitempty"`
	Seq       uint64      `json:"seq,omitempty"`
	Replayed  bool        `json:"replayed,omitempty"`
	Code      string      `json:"code,omitempty"`
	Message   string      `json:"message,omitempty"`
	Statement *int        `json:"statement,omitempty"`
	// SQLite is the statement's own error, when SQLite (or the sandbox)
	// raised it: pgwire maps its kind to a SQLSTATE (23505 for a unique
	// violation, 53100 past max_size...).
	SQLite *fwdSQLiteError `json:"sqlite,omitempty"`
}

type fwdSQLiteError struct {
	Code    int         `json:"code"`
	Kind    sqlite.Kind `json:"kind"`
	Message string      `json:"message"`
}

// leader is what a DB knows of its stream's leader. unreachable: nobody
// answered for node (it stopped, or it is a NATS server that is no hasvc
// node, with --replication-url), so writes run here until it is asked
// again.
type leader struct {
	node        string
	at          time.Time
	unreachable bool
}

// forwardTo returns the node this write should run on, or "" for here.
func (d *DB) forwardTo(ctx context.Context) string {
	e := d.eng
	// Not e.alone(): a node counts its peers every heartbeat, and one
	// that has just started may not have seen them yet. The stream knows
	// its leader (itself, without a cluster).
	if !e.Forward || !d.strong() {
		return ""
	}
	l := d.leader.Load()
	switch {
	case l == nil:
		l = d.refreshLeader(ctx)
	case time.Since(l.at) > leaderFresh && d.leaderAsking.CompareAndSwap(false, true):
		go func() {
			defer d.leaderAsking.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			d.refreshLeader(ctx)
		}()
	}
	if l == nil || l.node == e.Node || l.unreachable {
		return ""
	}
	return l.node
}

// leaderStale makes the next write ask for the stream's leader again, in
// the background, while it goes on using the one it knows: another node
// wrote to the stream, so leadership may have moved.
func (d *DB) leaderStale() {
	if l := d.leader.Load(); l != nil && !l.at.IsZero() {
		d.leader.CompareAndSwap(l, &leader{node: l.node, unreachable: l.unreachable})
	}
}

// refreshLeader asks JetStream which node leads the stream. When it
// cannot say (an election is under way), the leader known before stays.
// A write waits for it only when no leader is known at all.
func (d *DB) refreshLeader(ctx context.Context) *leader {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := d.stream.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		d.log.Debug("stream leader unknown", "err", err)
		return d.leader.Load()
	}
	l := &leader{node: info.Cluster.Leader, at: time.Now()}
	d.leader.Store(l)
	return l
}

// errNotForwarded: no node took the forwarded request; run it here.
// errTooLargeToForward is one of them: the request is larger than NATS
// carries, which says nothing of the leader.
// errNotAccepted: the node did not say it took the request in time; it may
// still run it, so the request must not run here too.
var (
	errNotForwarded      = errors.New("no node took the forwarded request")
	errTooLargeToForward = fmt.Errorf("%w: too large to send", errNotForwarded)
	errNotAccepted       = errors.New("the forwarded request was not taken in time")
)

// acceptWithin is how long a forwarded request waits for the node to say
// it took it (a reply sent on arrival, before the request runs). A node
// that does not is taken for gone, or cut off: this write answers
// EUNAVAILABLE (the node may still run it) and the next ones run here.
const acceptWithin = 2 * time.Second

// tryForward sends a write to the node that leads the stream, if that is
// another node and it takes it; done is false when the write is to run
// here.
func (d *DB) tryForward(ctx context.Context, stmts []sqlite.Statement, key string) (res *ExecResult, err error, done bool) {
	node := d.forwardTo(ctx)
	if node == "" {
		return nil, nil, false
	}
	res, err = d.forward(ctx, node, stmts, key)
	return res, err, !errors.Is(err, errNotForwarded)
}

// forward runs a write request on node and returns its answer; after it
// the request's writes are applied here too, so that a read on this node
// sees them.
func (d *DB) forward(ctx context.Context, node string, stmts []sqlite.Statement, key string) (*ExecResult, error) {
	req := fwdRequest{DB: d.name, Stmts: make([]fwdStatement, len(stmts)), Key: key}
	for i, st := range stmts {
		req.Stmts[i] = toFwdStatement(st)
	}
	if dl, ok := ctx.Deadline(); ok {
		req.Timeout = time.Until(dl)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg, err := d.eng.request(ctx, forwardSubject, node, data)
	if errors.Is(err, errNotAccepted) || errors.Is(err, errNotForwarded) && !errors.Is(err, errTooLargeToForward) {
		// Writes run here until the leader is known again.
		// Asked again (in the background) after leaderFresh: with
		// --replication-url the stream's leader is a NATS server that is
		// no node, and every write would try it first.
		d.leader.Store(&leader{node: node, at: time.Now(), unreachable: true})
	}
	if err != nil {
		return nil, err
	}
	d.eng.counters.forwarded.Add(1)
	var rep fwdReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return nil, fmt.Errorf("answer of node %s: %w", node, err)
	}
	if err := rep.err(); err != nil {
		return nil, err
	}
	res := &ExecResult{Seq: rep.Seq, Results: fromFwdResults(rep.Results), Replayed: rep.Replayed}
	if rep.Seq > 0 {
		// Read-your-writes on this node: wait for the write to arrive
		// here (a copy that falls behind slows the writes it forwards),
		// up to the publish timeout, and not on a stuck copy. It
		// committed whatever happens.
		if d.Stuck() == "" {
			wctx, cancel := context.WithTimeout(ctx, d.eng.publishTimeout())
			d.WaitApplied(wctx, rep.Seq)
			cancel()
		}
	}
	return res, nil
}

// request sends a forwarded request to node (on subject+node) and waits
// for its answer.
// The node says at once that it took the request; a node that does not
// within the publish timeout is taken for unreachable (EUNAVAILABLE),
// and one that cannot be reached at all for gone (errNotForwarded). Past
// acceptance, the wait lasts as long as the caller's.
func (e *Engine) request(ctx context.Context, subject, node string, data []byte) (*nats.Msg, error) {
	id, replies := e.replies.wait()
	defer e.replies.done(id)
	msg := &nats.Msg{Subject: subject + node, Reply: e.replies.prefix + id, Data: data, Header: nats.Header{}}
	msg.Header.Set(sentHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := e.NC.PublishMsg(msg); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, errTooLargeToForward
		}
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "forward the write")
	}
	within := min(acceptWithin, e.publishTimeout())
	accept := time.NewTimer(within)
	defer accept.Stop()
	select {
	case m := <-replies:
		if m.Header.Get("Status") == "503" || m.Header.Get(notTakenHeader) != "" {
			return nil, errNotForwarded // node stopped, or is stopping: it will not run it
		}
	case <-accept.C:
		e.health.failed(e.now())
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, errNotAccepted, fmt.Sprintf("node %s, which leads the database's stream, did not take the write within %s: it may be cut off from this node, and may still run it", node, within))
	case <-ctx.Done():
		return nil, tenant.Wrap(tenant.ETIMEOUT, ctx.Err(), "the write was sent to node "+node)
	}
	select {
	case m := <-replies:
		e.health.ok()
		return m, nil
	case <-ctx.Done():
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "the write went to node %s, which leads the database's stream, and no answer came in time: it may or may not have committed", node)
	}
}

// replies receives the answers to this node's forwarded requests on one
// wildcard subscription (prefix + request id): a subscription per request
// would announce itself to every route and withdraw again.
type replies struct {
	prefix  string
	sub     *nats.Subscription
	next    atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan *nats.Msg
}

func (r *replies) start(nc *nats.Conn) error {
	r.prefix = nats.NewInbox() + "."
	r.waiting = map[string]chan *nats.Msg{}
	sub, err := nc.Subscribe(r.prefix+"*", func(m *nats.Msg) {
		r.mu.Lock()
		ch := r.waiting[strings.TrimPrefix(m.Subject, r.prefix)]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // a reply nobody waits for any more
			}
		}
	})
	r.sub = sub
	return err
}

// wait registers a new request id and returns where its replies arrive.
func (r *replies) wait() (string, chan *nats.Msg) {
	id := strconv.FormatUint(r.next.Add(1), 36)
	ch := make(chan *nats.Msg, 2) // the acceptance and the answer
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	return id, ch
}

func (r *replies) done(id string) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

// notTakenHeader marks the answer of a node that did not take the request
// and will not run it: it is stopping, or the request came too late.
// sentHeader carries when the request was sent (Unix nanoseconds, by the
// sender's clock).
const (
	notTakenHeader = "Hasvc-Not-Taken"
	sentHeader     = "Hasvc-Sent"
)

// accept says to the sender of forwarded request m that this node takes
// it (see request), or that it does not, and reports which. Turned away,
// not run: while this node stops (the subscription lasts until the
// connection closes, so that a request routed here meanwhile is answered
// at once rather than lost, its sender waiting out the acceptance), and
// when the request is older than its sender waits for the acceptance
// (this node was frozen, or the link slow: the sender told its client
// the write may still run).
func (e *Engine) accept(m *nats.Msg) bool {
	sent, err := strconv.ParseInt(m.Header.Get(sentHeader), 10, 64)
	if e.stopping.Load() || err == nil && time.Since(time.Unix(0, sent)) > acceptWithin {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(notTakenHeader, e.Node)
		m.RespondMsg(reply)
		return false
	}
	return m.Respond(nil) == nil
}

// serveForwarded runs write requests other nodes forward to this one.
func (e *Engine) serveForwarded(m *nats.Msg) {
	if !e.accept(m) {
		return
	}
	if e.forwarding.Add(1) > maxForwarded {
		e.forwarding.Add(-1)
		e.replyForwarded(m, nil, tenant.Errorf(tenant.ETOOMANY, "node %s runs %d forwarded writes already", e.Node, maxForwarded))
		return
	}
	go func() {
		defer e.forwarding.Add(-1)
		var req fwdRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			e.replyForwarded(m, nil, fmt.Errorf("forwarded request: %w", err))
			return
		}
		stmts := make([]sqlite.Statement, len(req.Stmts))
		for i, fs := range req.Stmts {
			stmts[i] = fs.statement()
		}
		timeout := req.Timeout
		if timeout <= 0 {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := e.Exec(ctx, req.DB, stmts, ExecOptions{forwarded: true, Key: req.Key})
		e.replyForwarded(m, res, err)
	}()
}

func (e *Engine) replyForwarded(m *nats.Msg, res *ExecResult, err error) {
	var rep fwdReply
	if err != nil {
		rep.setErr(err)
	} else {
		rep.Seq, rep.Replayed, rep.Results = res.Seq, res.Replayed, toFwdResults(res.Results)
	}
	e.respond(m, rep)
}

// respond answers a forwarded request with rep, as JSON; an answer larger
// than NATS carries becomes ETOOLARGE.
func (e *Engine) respond(m *nats.Msg, rep any) {
	data, merr := json.Marshal(rep)
	if merr == nil && len(data) > int(e.NC.MaxPayload()) {
		data, merr = json.Marshal(fwdReply{Code: tenant.ETOOLARGE, Message: fmt.Sprintf("the answer (%d bytes) is over the %d bytes a node may send another", len(data), e.NC.MaxPayload())})
	}
	if merr != nil {
		data, _ = json.Marshal(fwdReply{Code: tenant.EINTERNAL, Message: merr.Error()})
	}
	if err := m.Respond(data); err != nil {
		e.Logger.Warn("answer a forwarded request", "err", err)
	}
}

// setErr puts err in rep, with its statement and SQLite's own error.
func (rep *fwdReply) setErr(err error) {
	rep.Code, rep.Message = tenant.ErrorCode(err), tenant.ErrorMessage(err)
	if i := tenant.ErrorStatement(err); i >= 0 {
		rep.Statement = &i
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		rep.SQLite = &fwdSQLiteError{Code: se.Code, Kind: se.Kind, Message: se.Message}
	}
}

// err is the error rep carries, as setErr put it there; nil if none.
func (rep *fwdReply) err() error {
	if rep.Code == "" {
		return nil
	}
	err := tenant.Errorf(rep.Code, "%s", rep.Message)
	if rep.SQLite != nil {
		err = tenant.Wrap(rep.Code, &sqlite.Error{Code: rep.SQLite.Code, Kind: rep.SQLite.Kind, Message: rep.SQLite.Message}, rep.Message)
	}
	if rep.Statement != nil {
		err = tenant.AtStatement(err, *rep.Statement)
	}
	return err
}
