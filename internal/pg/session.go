package pg

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// session is one client connection after startup. It runs on one
// goroutine; only cancelFn is touched by another (a cancel request).
type session struct {
	srv      *Server
	conn     net.Conn
	be       *pgproto3.Backend
	startup  map[string]string
	settings map[string]string // SET values, by lower-case name
	db       string
	// wideInts: the database is in eventual mode, whose rowids come from
	// node ranges above 2^43, so integer columns are int8 (declTypes).
	wideInts  bool
	principal *auth.Principal
	token     string // verified again when the keys change (a key retired)
	keysGen   uint64 // the keys' generation the token was last verified under
	revoked   atomic.Bool
	lastSeq   uint64 // stream sequence of the session's last committed write
	// scratch is set on a session of the postgres database (postgresdb.go):
	// its statements run there, on no tenant's data.
	scratch  *sqlite.Conn
	readOnly bool
	pid      uint32
	secret   uint32
	// releaseSlot gives back the session's place in its database's and
	// token's concurrency (set once authenticated).
	releaseSlot func()

	mu       sync.Mutex
	ctx      context.Context // statements' context, until cancelled
	cancelFn context.CancelFunc
	running  bool          // a statement is running: a cancel request ends it
	timeout  time.Duration // statement_timeout
	// minSeqSet is hasvc.min_seq (settingsChanged).
	minSeqSet uint64

	// A transaction block: inTx from BEGIN to COMMIT/ROLLBACK (or for
	// the statements of one multi-statement Query: implicit). tx and its
	// database are taken at the block's first statement.
	inTx     bool
	implicit bool
	txFailed bool
	// txReadOnly: the block is READ ONLY (BEGIN READ ONLY, SET
	// TRANSACTION READ ONLY, or default_transaction_read_only).
	txReadOnly bool
	tx         *engine.Tx
	txRelease  func()

	stmts      map[string]*prepared
	portals    map[string]*portal
	skipToSync bool // an extended-protocol error: ignore messages until Sync

	// pipe holds the Executes waiting for Sync, outside a transaction
	// block: they run then as one implicit transaction.
	pipe *pipeline

	queries map[string][]*prepared // parsed simple queries by text
	// columns caches tables' columns for parameter types, briefly: other
	// sessions may change the schema.
	columns     map[string][]tableColumn
	columnsTime time.Time
	columnsGen  uint64 // counts the times columns was emptied
	// parsed keeps what Parse made of each text: clients of the extended
	// protocol send the same texts again and again.
	parsed  map[string]*parsedText
	rowBuf  []byte
	rowVals [][]byte
	// The messages sent most often, filled and sent again (Backend.Send
	// encodes a message at once): not one allocation each per round.
	dataRow  pgproto3.DataRow
	complete pgproto3.CommandComplete
	ready    pgproto3.ReadyForQuery
	// statementDone is statementContext's finishing function when there is
	// no statement timeout: made once.
	statementDone func()

	// What the loop's reads keep (sessionReader): set only once the loop
	// runs, so startup's deadlines are left alone.
	looping      bool
	received     time.Time     // when the last read returned, by srv.Now
	deadlineSet  time.Time     // when the idle deadline was last pushed back
	deadlineIdle time.Duration // the idle limit it was pushed back by
	idleErr      func() error  // the error if that limit passes
}

// sessionReader is the session's connection as its Backend reads it. The
// Backend reads only when it has no whole message left to answer, so the
// work that needs the clock is done here, once per round trip rather than
// once per message: pushing back the idle deadline, and noting when the
// messages arrived (the token's expiry is judged by that).
type sessionReader struct{ ss *session }

// errRevokedRead ends a read that would begin after the token was revoked.
var errRevokedRead = errors.New("token revoked")

func (r sessionReader) Read(p []byte) (int, error) {
	ss := r.ss
	if !ss.looping {
		return ss.conn.Read(p)
	}
	ss.pushIdleDeadline()
	// After the push: Server.Revoke sets revoked and then the deadline, so
	// either this sees revoked, or Revoke's deadline comes after the push
	// and wakes the read.
	if ss.revoked.Load() {
		return 0, errRevokedRead
	}
	n, err := ss.conn.Read(p)
	ss.received = ss.srv.Now()
	return n, err
}

// pushIdleDeadline sets the read deadline for the idle limit of the
// session's state (idleLimit). It moves forward at most every sixteenth of
// the limit: setting it costs a timer update.
func (ss *session) pushIdleDeadline() {
	idle, idleErr := ss.idleLimit()
	ss.idleErr = idleErr
	if idle > 0 {
		if now := time.Now(); idle != ss.deadlineIdle || now.Sub(ss.deadlineSet) > idle/16 {
			ss.conn.SetReadDeadline(now.Add(idle))
			ss.deadlineSet, ss.deadlineIdle = now, idle
		}
	} else if !ss.deadlineSet.IsZero() {
		ss.conn.SetReadDeadline(time.Time{})
		ss.deadlineSet, ss.deadlineIdle = time.Time{}, 0
	}
}

// stmtKind is what runs a statement: the session itself, the catalog
// shim, or SQLite.
type stmtKind int

const (
	kindSQL stmtKind = iota
	kindBegin
	kindCommit
	kindRollback
	kindSet
	kindShow
	kindReset
	kindDiscard
	kindDeallocate
	kindListen
	kindSavepoint
	kindRelease
	kindRollbackTo
	kindUnsupported
	kindCopy
	kindCatalog
	kindEmpty
)

// prepared is a parsed statement: a named or unnamed prepared statement,
// or one statement of a simple query.
type prepared struct {
	sql       string // as the client sent it
	run       string // as SQLite runs it
	kind      stmtKind
	verb      []string // first keywords, for the command tag
	nparams   int
	paramOIDs []uint32
	desc      *sqlite.Description
	// fields are the result columns announced by Describe; from then on
	// every execution sends these types.
	fields    []column
	described bool
	// declCols are the columns of the last run when declared types alone
	// decided them (decl and names as that run gave them).
	declCols    []column
	decl, names []string
	// textDesc is the RowDescription of cols in text format, kept.
	textDesc *pgproto3.RowDescription
	descOf   []column
	// err refuses the statement whenever it is parsed or run (a
	// PostgreSQL feature hasvc cannot emulate, said plainly).
	err *pgError
	// A simple query's SELECT runs as literalsRun with literals bound
	// (literalsAsParams), when it has such literals.
	literalsRun string
	literals    []any
}

// portal is a bound statement and, once run, its result.
type portal struct {
	stmt    *prepared
	params  []any
	formats []int16 // as Bind gave them
	out     *outcome
	pos     int
}

// outcome is the result of running one statement.
type outcome struct {
	cols       []column // nil: the statement returns no rows
	rows       [][]any
	tag        string
	notice     string // a WARNING to send first
	noticeCode string
}

func (ss *session) status() byte {
	switch {
	case !ss.inTx || ss.implicit:
		return 'I'
	case ss.txFailed:
		return 'E'
	}
	return 'T'
}

// idleLimit is how long the session may wait for its next message, and
// what ends it then. Outside a transaction, IdleTimeout. In a transaction
// block that does not hold the writer, TxIdleTimeout: such a block holds a
// read snapshot, which keeps the WAL from being checkpointed (a writing
// block is rolled back by the engine after the same time, and the
// session goes on).
func (ss *session) idleLimit() (time.Duration, func() error) {
	switch {
	case !ss.inTx:
		return ss.srv.IdleTimeout, errIdleSession
	case ss.tx == nil || !ss.tx.Writing():
		return ss.srv.TxIdleTimeout, errIdleInTx
	}
	return 0, nil
}

// The errors that end an idle session, made only when one ends (not for
// every message).
func errIdleSession() error {
	return fatalf(stateIdleSession, "terminating connection due to idle-session timeout")
}

func errIdleInTx() error {
	return fatalf(stateIdleInTx, "terminating connection due to idle-in-transaction timeout")
}

// loop reads and answers messages until the client leaves.
func (ss *session) loop() {
	defer ss.endTx(false)
	ss.looping = true
	for {
		if ss.revoked.Load() {
			ss.fatal(fatalf(stateInvalidPassword, "the token was revoked"))
			return
		}
		msg, err := ss.be.Receive()
		if err != nil {
			var ne net.Error
			if ss.revoked.Load() { // Server.Revoke woke the read, or it was not begun
				ss.fatal(fatalf(stateInvalidPassword, "the token was revoked"))
				return
			}
			if errors.As(err, &ne) && ne.Timeout() {
				if ss.idleErr != nil {
					ss.fatal(ss.idleErr())
				}
				return
			}
			var tooBig *pgproto3.ExceededMaxBodyLenErr
			if errors.As(err, &tooBig) {
				ss.fatal(fatalf(stateProgramLimit, "message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen))
				return
			}
			if err != io.EOF && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				ss.srv.Logger.Debug("pg receive", "err", err)
			}
			return
		}
		if _, term := msg.(*pgproto3.Terminate); !term && ss.received.After(ss.principal.ExpiresAt) {
			// A session lasts no longer than the token it was opened
			// with: an expired token no longer reads or writes.
			ss.fatal(fatalf(stateInvalidPassword, "the token expired at %s; reconnect with a new one", ss.principal.ExpiresAt.UTC().Format(time.RFC3339)))
			return
		}
		if g := ss.srv.Auth.Generation(); g != ss.keysGen {
			// The keys changed: a session whose token's key was
			// retired ends with it.
			if _, err := ss.srv.Auth.Verify(ss.token); err != nil {
				ss.fatal(fatalf(stateInvalidPassword, "%s; reconnect with a new token", tenant.ErrorMessage(err)))
				return
			}
			ss.keysGen = g
		}
		if ss.skipToSync {
			if _, ok := msg.(*pgproto3.Sync); !ok {
				if _, term := msg.(*pgproto3.Terminate); term {
					return
				}
				continue
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if ss.pipe != nil {
				ss.runPipeline()
			}
			ss.simpleQuery(m.String)
		case *pgproto3.Parse:
			ss.extended(ss.parse(m))
		case *pgproto3.Bind:
			ss.extended(ss.bind(m))
		case *pgproto3.Describe:
			ss.extended(ss.describe(m))
		case *pgproto3.Execute:
			ss.extended(ss.execute(m))
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(ss.stmts, m.Name)
			} else {
				delete(ss.portals, m.Name)
			}
			ss.send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			if ss.pipe != nil {
				ss.runPipeline()
			}
			ss.skipToSync = false
			delete(ss.portals, "")
			ss.sendReady()
			if err := ss.be.Flush(); err != nil {
				return
			}
		case *pgproto3.Flush:
			if ss.pipe != nil {
				ss.runPipeline()
			}
			if err := ss.be.Flush(); err != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// The rest of a COPY that failed: dropped, as PostgreSQL does.
		default:
			ss.be.Send(errorResponse(errorf(stateFeatureNotSupp, "%T messages are not supported", msg)))
			ss.sendReady()
			if err := ss.be.Flush(); err != nil {
				return
			}
		}
	}
}

// extended finishes an extended-protocol message: on error, the error
// goes out and messages are skipped until Sync.
func (ss *session) extended(err error) {
	if err == nil {
		return
	}
	ss.sendError(err)
	ss.skipToSync = true
}

func (ss *session) sendError(err error) {
	if ss.inTx {
		ss.txFailed = true
	}
	if ss.pipe != nil {
		// The pipeline's implicit transaction is aborted: none of its
		// statements run.
		ss.pipe.failed = true
	}
	ss.send(ss.errorResponse(err))
}

// errorResponse builds the ErrorResponse for err, and logs it if it is
// internal: the client is told only "internal error".
func (ss *session) errorResponse(err error) *pgproto3.ErrorResponse {
	r := errorResponse(ss.readOnlyError(err))
	if r.Code == stateInternal {
		ss.srv.Logger.Error("statement failed", "db", ss.db, "err", err)
	}
	return r
}

// send sends a message, or queues it behind the results of Executes
// waiting for Sync.
func (ss *session) send(msg pgproto3.BackendMessage) {
	if ss.pipe != nil {
		ss.pipe.steps = append(ss.pipe.steps, pipeStep{msg: msg})
		return
	}
	ss.be.Send(msg)
}

// statementContext is the context a statement runs in: a cancel request
// or statement_timeout ends it. Statements share one cancellable context
// until a cancel request uses it up.
func (ss *session) statementContext() (context.Context, func()) {
	ss.mu.Lock()
	if ss.ctx == nil || ss.ctx.Err() != nil {
		// The token names the client whose share of a database's
		// readers the statements count against.
		ss.ctx, ss.cancelFn = context.WithCancel(engine.WithClient(ss.srv.ctx, ss.token))
	}
	ctx := ss.ctx
	ss.running = true
	ss.mu.Unlock()
	if ss.statementDone == nil {
		ss.statementDone = func() {
			ss.mu.Lock()
			ss.running = false
			ss.mu.Unlock()
		}
	}
	if ss.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ss.timeout)
		return ctx, func() { cancel(); ss.statementDone() }
	}
	return ctx, ss.statementDone
}

// sendReady sends ReadyForQuery with the session's transaction status.
func (ss *session) sendReady() {
	ss.ready.TxStatus = ss.status()
	ss.be.Send(&ss.ready)
}

// cancelRunning cancels the running statement, if there is one.
func (ss *session) cancelRunning() {
	ss.mu.Lock()
	if ss.running && ss.cancelFn != nil {
		ss.cancelFn()
	}
	ss.mu.Unlock()
}

// simpleQuery answers a Query message: each statement's rows and tag, one
// ReadyForQuery at the end. Several statements outside a transaction block
// run as one implicit transaction, as in PostgreSQL.
func (ss *session) simpleQuery(q string) {
	stmts := ss.parseSimple(q)
	switch {
	case len(stmts) == 0:
		ss.be.Send(&pgproto3.EmptyQueryResponse{})
	default:
		implicit := !ss.inTx && len(stmts) > 1 && !controlsTx(stmts)
		if implicit {
			ss.inTx, ss.implicit = true, true
		}
		failed := false
		for _, p := range stmts {
			if err := ss.runSimple(p); err != nil {
				ss.sendError(err)
				failed = true
				break
			}
		}
		if implicit {
			if err := ss.endTx(!failed); err != nil && !failed {
				ss.sendError(err)
			}
		}
	}
	ss.sendReady()
	ss.be.Flush()
}

func controlsTx(stmts []*prepared) bool {
	for _, p := range stmts {
		switch p.kind {
		case kindBegin, kindCommit, kindRollback:
			return true
		}
	}
	return false
}

func (ss *session) runSimple(p *prepared) error {
	ctx, done := ss.statementContext()
	var out *outcome
	var err error
	if p.kind == kindCopy {
		out, err = ss.copy(ctx, p.sql)
	} else {
		out, err = ss.run(ctx, p, nil)
	}
	done()
	if err != nil {
		return err
	}
	if out.cols != nil {
		ss.be.Send(rowDescription(out.cols, nil))
	}
	return ss.sendOutcome(&portal{out: out}, 0)
}

// parseSimple splits and parses a simple query, remembering the result
// for the next time the same text comes.
func (ss *session) parseSimple(q string) []*prepared {
	if ps, ok := ss.queries[q]; ok {
		return ps
	}
	texts := splitStatements(q)
	ps := make([]*prepared, 0, len(texts))
	for _, t := range texts {
		p := ss.prepare(t)
		if p.kind == kindSQL && p.err == nil && p.nparams == 0 && p.verb[0] == "SELECT" {
			p.literalsRun, p.literals = literalsAsParams(p.run)
		}
		ps = append(ps, p)
	}
	if ss.queries == nil || len(ss.queries) >= 256 {
		ss.queries = map[string][]*prepared{}
	}
	ss.queries[q] = ps
	return ps
}

// prepare classifies one statement and rewrites it for SQLite.
func (ss *session) prepare(sql string) *prepared {
	sql = strings.TrimSpace(sql)
	p := &prepared{sql: sql, run: sql}
	kw := keywords(sql, 3)
	p.verb = kw
	if len(kw) == 0 {
		p.kind = kindEmpty
		return p
	}
	second := ""
	if len(kw) > 1 {
		second = kw[1]
	}
	switch kw[0] {
	case "BEGIN", "START":
		p.kind = kindBegin
		return p
	case "COMMIT", "END":
		p.kind = kindCommit
		return p
	case "ROLLBACK", "ABORT":
		p.kind = kindRollback
		if second == "TO" || len(kw) > 2 && kw[2] == "TO" { // ROLLBACK [WORK] TO [SAVEPOINT] name
			p.kind = kindRollbackTo
		}
		return p
	case "SAVEPOINT":
		p.kind = kindSavepoint
		return p
	case "RELEASE":
		p.kind = kindRelease
		return p
	case "VACUUM", "CHECKPOINT":
		p.kind = kindDiscard // nothing to do: the engine keeps its files
		return p
	case "COPY":
		p.kind = kindCopy
		return p
	case "PREPARE", "EXECUTE", "DECLARE", "FETCH", "MOVE", "CLOSE", "LOCK", "GRANT", "REVOKE", "NOTIFY", "LISTEN":
		p.kind = kindUnsupported
		return p
	case "SET":
		p.kind = kindSet
		return p
	case "SHOW":
		p.kind = kindShow
		return p
	case "RESET":
		p.kind = kindReset
		return p
	case "DISCARD":
		p.kind = kindDiscard
		return p
	case "DEALLOCATE":
		p.kind = kindDeallocate
		return p
	case "UNLISTEN":
		p.kind = kindListen
		return p
	}
	p.run, p.nparams = rewrite(sql, ss)
	if kw[0] == "CREATE" {
		p.run, p.err = rewriteSerial(p.run)
	}
	if strings.Contains(p.run, `'\`) {
		// A string in bytea's input format may be a BLOB column's value.
		ctx, cancel := context.WithTimeout(ss.srv.ctx, 5*time.Second)
		p.run = byteaLiterals(p.run, func(table string) []tableColumn { return ss.tableColumns(ctx, table) })
		cancel()
	}
	if isCatalogQuery(p.run) {
		p.kind = kindCatalog
	}
	return p
}

// parsedText is what Parse makes of a text: the statement as prepare
// analyses it (from the text and the session's constants alone), and the
// parameter types inferred for it when the client gave none (from the
// tables' columns as the session last looked them up: columnsGen).
type parsedText struct {
	p           prepared
	inferred    []uint32
	inferredGen uint64
}

// parsedText returns what Parse made of text before, or makes it. A text
// whose analysis reads the schema (a bytea literal, see byteaLiterals) is
// analysed every time.
func (ss *session) parsedText(text string) *parsedText {
	if pt, ok := ss.parsed[text]; ok {
		return pt
	}
	pt := &parsedText{p: *ss.prepare(text)}
	if strings.Contains(pt.p.run, `'\`) || strings.Contains(text, `'\`) {
		return pt
	}
	if ss.parsed == nil || len(ss.parsed) >= 256 {
		ss.parsed = map[string]*parsedText{}
	}
	ss.parsed[text] = pt
	return pt
}

// columnsCurrent reports whether the tables' columns the session looked up
// at generation gen are still those tableColumns would give.
func (ss *session) columnsCurrent(gen uint64) bool {
	return ss.columns != nil && gen == ss.columnsGen && time.Since(ss.columnsTime) <= time.Second
}

// tableColumns returns a table's columns and declared types ("" if there
// is no such table).
func (ss *session) tableColumns(ctx context.Context, table string) []tableColumn {
	if ss.columns == nil || time.Since(ss.columnsTime) > time.Second {
		ss.columns, ss.columnsTime = map[string][]tableColumn{}, time.Now()
		ss.columnsGen++
	}
	if cols, ok := ss.columns[table]; ok {
		return cols
	}
	var cols []tableColumn
	if res, err := ss.inspect(ctx, "PRAGMA table_info("+sqlite.QuoteString(table)+")"); err == nil {
		for _, r := range res.Rows {
			name, _ := r[1].(string)
			decl, _ := r[2].(string)
			cols = append(cols, tableColumn{strings.ToLower(name), decl})
		}
	}
	ss.columns[table] = cols
	return cols
}

// run runs one parsed statement with its parameters.
func (ss *session) run(ctx context.Context, p *prepared, params []any) (*outcome, error) {
	if ss.inTx && ss.txFailed && p.kind != kindCommit && p.kind != kindRollback && p.kind != kindRollbackTo {
		return nil, errorf(stateInFailedTx, "current transaction is aborted, commands ignored until end of transaction block")
	}
	switch p.kind {
	case kindEmpty:
		return &outcome{tag: ""}, nil
	case kindBegin:
		out := &outcome{tag: "BEGIN"}
		if ss.inTx && !ss.implicit {
			out.notice, out.noticeCode = "there is already a transaction in progress", stateActiveTx
			return out, nil
		}
		ss.inTx, ss.implicit, ss.txFailed = true, false, false
		ss.txReadOnly = isOn(ss.settings["default_transaction_read_only"])
		if ro, given := accessMode(words(p.sql)); given {
			ss.txReadOnly = ro
		}
		return out, nil
	case kindCommit:
		out := &outcome{tag: "COMMIT"}
		if !ss.inTx || ss.implicit {
			out.notice, out.noticeCode = "there is no transaction in progress", stateNoActiveTx
			return out, nil
		}
		if ss.txFailed {
			out.tag = "ROLLBACK"
			ss.endTx(false)
			return out, nil
		}
		if err := ss.endTx(true); err != nil {
			return nil, err
		}
		return out, nil
	case kindRollback:
		out := &outcome{tag: "ROLLBACK"}
		if !ss.inTx || ss.implicit {
			out.notice, out.noticeCode = "there is no transaction in progress", stateNoActiveTx
			return out, nil
		}
		ss.endTx(false)
		return out, nil
	case kindSavepoint, kindRelease, kindRollbackTo:
		return ss.savepoint(ctx, p)
	case kindSet:
		return ss.set(p.sql)
	case kindShow:
		return ss.show(p.sql)
	case kindReset:
		return ss.reset(p.sql)
	case kindDiscard:
		if len(p.verb) > 1 && p.verb[0] == "DISCARD" && p.verb[1] == "ALL" {
			clear(ss.settings)
			ss.settingsChanged()
			clear(ss.stmts)
			clear(ss.portals)
		}
		return &outcome{tag: strings.Join(p.verb[:min(2, len(p.verb))], " ")}, nil
	case kindDeallocate:
		return ss.deallocate(p.sql)
	case kindListen:
		return &outcome{tag: "UNLISTEN"}, nil
	case kindSQL:
		if p.err != nil {
			return nil, p.err
		}
	case kindCopy:
		return nil, errorf(stateFeatureNotSupp, "COPY works through the simple query protocol only (psql, libpq's PQexec, psycopg's copy)")
	case kindUnsupported:
		return nil, errorf(stateFeatureNotSupp, "%s is not supported by hasvc", strings.Join(p.verb[:min(2, len(p.verb))], " "))
	case kindCatalog:
		return ss.catalog(ctx, p.sql, params)
	}
	st := sqlite.Statement{SQL: p.run}
	if len(params) > 0 {
		st.Params = params
	} else if p.literals != nil {
		st.SQL, st.Params = p.literalsRun, p.literals
	}
	res, err := ss.exec(ctx, st)
	if err != nil {
		return nil, err
	}
	return ss.outcome(p, res), nil
}

// outcome is what a statement's result sends: its rows with the types
// the statement decides, and its command tag.
func (ss *session) outcome(p *prepared, res *sqlite.Result) *outcome {
	out := &outcome{tag: commandTag(p.verb, res)}
	if v := p.verb[0]; v == "CREATE" || v == "DROP" || v == "ALTER" {
		ss.columns = nil
	}
	if res.HasRows() {
		out.rows = res.Rows
		switch {
		case p.described:
			out.cols = p.fields
		case p.declCols != nil && slices.Equal(p.decl, res.DeclTypes) && slices.Equal(p.names, res.Columns):
			out.cols = p.declCols
		default:
			var fixed bool
			out.cols, fixed = columnTypes(res.Columns, ss.declTypes(res.DeclTypes), res.Rows, p.run)
			if fixed {
				// Declared types alone decide: the same every time.
				p.declCols, p.decl, p.names = out.cols, res.DeclTypes, res.Columns
			}
		}
	}
	return out
}

// exec runs a statement on SQLite: in the transaction block if there is
// one, else alone (reads on a reader, writes committed and replicated).
func (ss *session) exec(ctx context.Context, st sqlite.Statement) (*sqlite.Result, error) {
	if ss.scratch != nil {
		res, err := ss.scratchRun(ctx, []sqlite.Statement{st})
		if err != nil {
			return nil, err
		}
		return &res[0], nil
	}
	if ss.inTx {
		if err := ss.beginTx(ctx); err != nil {
			return nil, err
		}
		return ss.tx.Exec(ctx, st)
	}
	return ss.execAlone(ctx, st, ss.readOnlyNow())
}

// execAlone runs one statement outside any transaction block.
func (ss *session) execAlone(ctx context.Context, st sqlite.Statement, readOnly bool) (*sqlite.Result, error) {
	res, err := ss.execAloneAll(ctx, []sqlite.Statement{st}, readOnly)
	if err != nil {
		return nil, err
	}
	return &res[0], nil
}

// execAloneAll runs statements as one transaction of their own, outside
// any transaction block; an error names the statement that failed.
func (ss *session) execAloneAll(ctx context.Context, stmts []sqlite.Statement, readOnly bool) ([]sqlite.Result, error) {
	db, release, err := ss.srv.DB.Acquire(ctx, ss.db)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := db.Exec(ctx, stmts, ss.execOptions(readOnly))
	if err != nil {
		return nil, err
	}
	ss.committed(res.Seq)
	return res.Results, nil
}

// describeSQL describes a statement for Parse and Describe.
func (ss *session) describeSQL(ctx context.Context, sql string, opts sqlite.DescribeOptions) (*sqlite.Description, error) {
	if ss.inTx && ss.tx != nil {
		return ss.tx.Describe(ctx, sql, opts)
	}
	if ss.scratch != nil {
		return ss.scratch.Describe(ctx, sql, opts)
	}
	db, release, err := ss.srv.DB.Acquire(ctx, ss.db)
	if err != nil {
		return nil, err
	}
	defer release()
	return db.Describe(ctx, sql, opts)
}

// inspect runs one of hasvc's own read-only looks at the schema (for
// parameter types and the catalog) as the session sees the database, but
// without starting a transaction block's snapshot.
func (ss *session) inspect(ctx context.Context, sql string) (*sqlite.Result, error) {
	if ss.inTx && ss.tx != nil {
		return ss.tx.Inspect(ctx, sqlite.Statement{SQL: sql})
	}
	if ss.scratch != nil {
		res, err := ss.scratchRun(ctx, []sqlite.Statement{{SQL: sql}})
		if err != nil {
			return nil, err
		}
		return &res[0], nil
	}
	db, release, err := ss.srv.DB.Acquire(ctx, ss.db)
	if err != nil {
		return nil, err
	}
	defer release()
	return db.Inspect(ctx, sqlite.Statement{SQL: sql})
}

// commandTag is PostgreSQL's CommandComplete tag for a statement.
func commandTag(verb []string, res *sqlite.Result) string {
	n := res.RowsAffected
	if res.HasRows() {
		n = int64(len(res.Rows))
	}
	if len(verb) == 0 {
		return ""
	}
	switch verb[0] {
	case "INSERT", "REPLACE":
		return "INSERT 0 " + strconv.FormatInt(n, 10)
	case "UPDATE", "DELETE":
		return verb[0] + " " + strconv.FormatInt(n, 10)
	case "CREATE", "DROP":
		// CREATE [UNIQUE|TEMP...] TABLE|INDEX|VIEW|TRIGGER
		for _, w := range verb[1:] {
			switch w {
			case "TABLE", "INDEX", "VIEW", "TRIGGER":
				return verb[0] + " " + w
			}
		}
		if len(verb) > 1 {
			return verb[0] + " " + verb[1]
		}
		return verb[0]
	case "ALTER":
		return "ALTER TABLE"
	}
	if res.HasRows() {
		return "SELECT " + strconv.FormatInt(n, 10)
	}
	return verb[0]
}
