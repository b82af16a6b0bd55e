package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Idempotency keys. A client that sends a write again (its answer was
// lost, or it got EUNAVAILABLE while the write may have committed) can
// give both attempts the same key (ExecOptions.Key): the write then
// commits once, and the second attempt gets the first one's answer.
//
// The invariant: a copy holds a row for key K in _hasvc_requests exactly
// when it holds the write that K's request committed, because the row is
// written in the same SQLite transaction as that write, on every copy. The
// node that runs the request writes it in the request's savepoint (in
// strong mode with the sequence the message must get, in eventual mode
// with 0 until the message is acknowledged); every other copy writes it
// when it applies the message, which carries the key and the results in
// its headers.
//
// A request with a key looks for it first, on the writer, inside the
// transaction it would run in; a key another request of the same commit
// group has runs in the next group. In strong mode that finds every earlier
// commit of K: a copy that lacks the write of the first attempt also lags
// the stream, so the second attempt loses the race for the stream's next
// sequence, catches up (recording K) and looks again. In eventual mode a
// node sees only the attempts it has applied: two attempts sent to two
// nodes at once may both commit.
//
// A request that changed nothing publishes no message and leaves no row:
// sent again, it runs again. Rows are kept for keepRequests.

const (
	requestKeyHeader     = "Hasvc-Request-Key"
	requestResultsHeader = "Hasvc-Request-Results"
	// maxKeptResults bounds the results kept for a replay; larger results
	// are not kept, and a replay says the write committed without them.
	maxKeptResults = 256 << 10
	// keepRequests is how long a key is remembered.
	keepRequests = 24 * time.Hour
	// MaxRequestKey is the longest key accepted.
	MaxRequestKey = 255
)

// CheckRequestKey validates an idempotency key: 1 to MaxRequestKey
// printable ASCII characters, no spaces (it travels in message headers).
func CheckRequestKey(key string) error {
	if key == "" || len(key) > MaxRequestKey {
		return tenant.Errorf(tenant.EINVALID, "an idempotency key has 1 to %d characters", MaxRequestKey)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return tenant.Errorf(tenant.EINVALID, "an idempotency key is printable ASCII without spaces")
		}
	}
	return nil
}

// encodeResults is results in the exact JSON of forwarded answers.
func encodeResults(results []sqlite.Result) ([]byte, error) {
	return json.Marshal(toFwdResults(results))
}

func decodeResults(data []byte) ([]sqlite.Result, error) {
	var rs []fwdResult
	if err := json.Unmarshal(data, &rs); err != nil {
		return nil, err
	}
	return fromFwdResults(rs), nil
}

func toFwdResults(results []sqlite.Result) []fwdResult {
	out := make([]fwdResult, 0, len(results))
	for _, r := range results {
		fr := fwdResult{Columns: r.Columns, DeclTypes: r.DeclTypes, RowsAffected: r.RowsAffected, LastInsertID: r.LastInsertID}
		for _, row := range r.Rows {
			fr.Rows = append(fr.Rows, change.Values(row))
		}
		out = append(out, fr)
	}
	return out
}

func fromFwdResults(rs []fwdResult) []sqlite.Result {
	out := make([]sqlite.Result, len(rs))
	for i, r := range rs {
		res := sqlite.Result{Columns: r.Columns, DeclTypes: r.DeclTypes, RowsAffected: r.RowsAffected, LastInsertID: r.LastInsertID}
		if r.Columns != nil {
			res.Rows = make([][]any, len(r.Rows))
			for j, row := range r.Rows {
				res.Rows[j] = row
			}
		}
		out[i] = res
	}
	return out
}

// answerByKey settles op o, which has an idempotency key, before it runs
// in the writer's open transaction, and reports whether it did: with its
// key's commit's answer, or (an earlier request of this group, listed in
// groupKeys, has the key) by sending it to the next group. Otherwise it
// adds the key to groupKeys and o runs.
func (d *DB) answerByKey(o *op, groupKeys *map[string]bool) bool {
	var res *ExecResult
	found := (*groupKeys)[o.key]
	if !found {
		var err error
		if res, found, err = d.lookupRequest(o.key); err != nil {
			o.err = err
			return true
		}
	}
	switch {
	case res != nil:
		o.res = *res // committed already: its answer
		return true
	case found:
		// It runs after that request commits or fails; past the
		// attempts, this answers.
		o.again = true
		o.err = tenant.Errorf(tenant.ECONFLICT, "a request with the same idempotency key is being committed; retry")
		return true
	}
	if *groupKeys == nil {
		*groupKeys = map[string]bool{}
	}
	(*groupKeys)[o.key] = true
	return false
}

// keepRequest writes the row of o's key, in o's savepoint, for o's
// results and its message data (not yet published), and gives the message
// the headers that carry them to the other copies.
func (d *DB) keepRequest(o *op, g *commitGroup, data []byte) error {
	kept, err := encodeResults(o.res.Results)
	if err != nil {
		return err
	}
	if len(kept) > maxKeptResults || len(data)+len(kept) > d.eng.maxMessage() {
		// Not kept: a replay says the write committed, without them.
		// (The stream takes messages of the limit plus 1 KB, room for
		// the key.)
		kept = nil
	}
	// In strong mode the message is stored at the sequence it expects,
	// or not at all: the row takes that sequence now. In eventual mode it
	// is set at commit (commitApplied).
	var seq uint64
	if g.strong {
		seq = g.next + 1
	}
	if err := d.recordRequest(o.key, seq, kept); err != nil {
		return err
	}
	if d.keyedWrites++; d.keyedWrites%64 == 0 {
		if err := d.forgetOldRequests(); err != nil {
			return err
		}
	}
	o.msg.header = requestHeader(o.key, kept)
	return nil
}

// lookupRequest looks for key on the writer, in its open transaction.
// found with seq 0 (a row an eventual-mode commit has yet to complete,
// which no other group sees): run again later. A replay of a write whose
// results were not kept is an ECONFLICT error that names its sequence.
func (d *DB) lookupRequest(key string) (res *ExecResult, found bool, err error) {
	w := d.writer
	var seq int64
	var results any
	err = w.Internal(func() error {
		return w.Query("SELECT seq, results FROM _hasvc_requests WHERE key = ?", []any{key}, func(s *sqlite.Stmt) error {
			found = true
			seq, _ = s.Column(0).(int64)
			results = s.Column(1)
			return nil
		})
	})
	if err != nil || !found || seq == 0 {
		return nil, found, err
	}
	queued := seq == queuedSeq
	if queued {
		seq = 0
	}
	text, ok := results.(string)
	if !ok && queued {
		return nil, true, tenant.Errorf(tenant.ECONFLICT, "a request with this idempotency key committed on this node and is queued for the stream; its results were over %d bytes and were not kept", maxKeptResults)
	}
	if !ok {
		return nil, true, tenant.Errorf(tenant.ECONFLICT, "a request with this idempotency key committed at sequence %d; its results were over %d bytes and were not kept", seq, maxKeptResults)
	}
	rs, err := decodeResults([]byte(text))
	if err != nil {
		return nil, true, fmt.Errorf("stored results of key %q: %w", key, err)
	}
	return &ExecResult{Results: rs, Seq: uint64(seq), Queued: queued, Replayed: true}, true, nil
}

// requestHeader is the headers of the message of a request with key and
// results (nil if too large to keep), or nil without a key.
func requestHeader(key string, results []byte) nats.Header {
	if key == "" {
		return nil
	}
	h := nats.Header{}
	h.Set(requestKeyHeader, key)
	if results != nil {
		h.Set(requestResultsHeader, string(results))
	}
	return h
}

// recordRequest writes key's row on the writer, in its open transaction.
func (d *DB) recordRequest(key string, seq uint64, results []byte) error {
	w := d.writer
	var r any
	if results != nil {
		r = string(results)
	}
	return w.Internal(func() error {
		return w.Exec("INSERT OR REPLACE INTO _hasvc_requests (key, seq, results, at) VALUES (?, ?, ?, ?)",
			key, int64(seq), r, d.eng.now().Unix())
	})
}

// forgetOldRequests deletes the keys older than keepRequests, in the
// writer's open transaction: the rows before the first young one in
// rowid order (the order they were recorded in), so it reads only those.
func (d *DB) forgetOldRequests() error {
	w := d.writer
	return w.Internal(func() error {
		return w.Exec(`DELETE FROM _hasvc_requests WHERE rowid < coalesce(
			(SELECT rowid FROM _hasvc_requests WHERE at >= ? ORDER BY rowid LIMIT 1), 9223372036854775807)`,
			d.eng.now().Add(-keepRequests).Unix())
	})
}

// messageRequest returns the key and results a message's headers carry.
func messageRequest(h nats.Header) (key string, results []byte) {
	if h == nil {
		return "", nil
	}
	key = h.Get(requestKeyHeader)
	if key == "" {
		return "", nil
	}
	if r := h.Get(requestResultsHeader); r != "" {
		results = []byte(r)
	}
	return key, results
}
