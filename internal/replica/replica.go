// Package replica keeps a local SQLite database a live, read-only copy of
// one hasvc database, over the HTTP API a user has: it starts from a backup
// (GET /db/<name>/backup, which names its sequence) and then applies every
// transaction of the change feed (GET /db/<name>/changes) in stream order,
// each in one local transaction together with its sequence, so the local
// database is always a state the database had, and resumes where it
// stopped.
//
// The package speaks the protocol only; the local database is a Target:
// a file written with hasvc's own SQLite (`hasvc replica`, package
// sqlitefile) or the database a host process has open, written with the
// host's SQLite (the hasvc_sync extension).
package replica

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"hasvc/internal/change"
)

// Target is the local database a replica writes.
type Target interface {
	// Applied returns the sequence the local database has applied;
	// false if it is empty and has to be downloaded first. A database
	// that is neither empty nor a replica is a BadTargetError.
	Applied() (seq uint64, ok bool, err error)
	// Restore replaces the whole local database, in place and in one
	// transaction, with the SQLite file at path, which holds the
	// database at sequence seq.
	Restore(path string, seq uint64) error
	// Apply writes one transaction's changes and its sequence in one
	// local transaction.
	Apply(seq uint64, msg *change.Message) error
}

// StateTable holds, in the local database, the sequence it has applied.
// The backups a replica starts from have no _hasvc_ tables of their own.
const StateTable = "_hasvc_replica"

// BadTargetError: the local database cannot be a replica; retrying would
// not help.
type BadTargetError struct{ Err error }

func (e BadTargetError) Error() string { return e.Err.Error() }
func (e BadTargetError) Unwrap() error { return e.Err }

// Replica follows database DB at URLs into Target.
type Replica struct {
	// URLs are the nodes to read from, e.g. http://127.0.0.1:8080: the
	// first, and the next one each time a connection fails.
	URLs   []string
	DB     string
	Token  string // a read token for DB
	Target Target
	Dir    string // where downloads are kept until restored (default: the temporary directory)
	Client *http.Client
	Logger *slog.Logger

	// Applied, if set, is called with the local sequence when the
	// replica starts following, and after each transaction it applies.
	Applied func(seq uint64)

	// Until, if set, ends Run once the local database has applied that
	// sequence; with Once, Run ends once it has applied what the
	// database held when it started.
	Until uint64
	Once  bool

	cur    int    // index in URLs of the node in use
	target uint64 // Until, or the sequence Once found
	done   bool   // there is a target

	mu      sync.Mutex
	status  Status
	changed chan struct{} // closed and replaced at each change of status
}

// Status is what a replica is doing.
type Status struct {
	// State is starting, downloading, connecting, following,
	// reconnecting, stopped or failed.
	State    string `json:"state"`
	Sequence uint64 `json:"sequence"` // applied locally
	// Lag is the time from the last applied transaction's commit on
	// its node to its commit here, in milliseconds (clocks apart
	// included).
	Lag   float64 `json:"lag_ms"`
	Node  string  `json:"node,omitempty"`
	Error string  `json:"error,omitempty"` // the last failure
}

// Status returns what the replica is doing.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Replica) update(fn func(*Status)) {
	r.mu.Lock()
	fn(&r.status)
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// WaitFor waits until the local database has applied seq (a write's
// answer names its sequence) or ctx ends.
func (r *Replica) WaitFor(ctx context.Context, seq uint64) error {
	for {
		r.mu.Lock()
		st := r.status
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		switch {
		case st.Sequence >= seq:
			return nil
		case st.State == "stopped" || st.State == "failed":
			return fmt.Errorf("the replica is %s at sequence %d: %s", st.State, st.Sequence, st.Error)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("sequence %d not applied yet (at %d): %w", seq, st.Sequence, ctx.Err())
		}
	}
}

// errDone: the local database reached Until.
var errDone = errors.New("caught up")

// errRestart: the feed's next sequence was trimmed; start again from a
// new backup.
var errRestart = errors.New("the stream no longer holds the next sequence")

// errEnded: the node ended the feed for good (the token expired or was
// revoked): retrying would not help.
type errEnded struct{ reason string }

func (e errEnded) Error() string { return "the node ended the change feed: " + e.reason }

// Run keeps the local database in sync until ctx ends, reconnecting after
// network failures; it returns early only if the node refuses for good
// (the token is no longer valid, or the database is gone) or the local
// database cannot be a replica.
func (r *Replica) Run(ctx context.Context) (err error) {
	if r.Client == nil {
		r.Client = http.DefaultClient
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	defer func() {
		r.update(func(s *Status) {
			s.State = "stopped"
			if err != nil {
				s.State, s.Error = "failed", err.Error()
			}
		})
	}()
	if len(r.URLs) == 0 {
		return errors.New("no node to read from")
	}
	r.update(func(s *Status) { s.State, s.Node = "starting", r.URLs[r.cur] })
	r.target, r.done = r.Until, r.Until > 0
	if r.Once {
		last, err := r.lastSeq(ctx)
		if err != nil {
			return err
		}
		r.target, r.done = last, true
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.session(ctx)
		var ended errEnded
		var refused *refusedError
		var bad BadTargetError
		switch {
		case errors.Is(err, errDone):
			return nil
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ended), errors.As(err, &bad):
			return err
		case errors.As(err, &refused) && refused.status != http.StatusTooManyRequests && refused.status < 500:
			return err
		case errors.Is(err, errRestart):
			r.Logger.Warn("the database's history was trimmed past this replica: downloading it again")
			if err := r.download(ctx); err != nil {
				r.update(func(s *Status) { s.Error = err.Error() })
				break
			}
			backoff = 100 * time.Millisecond
			continue
		}
		r.cur = (r.cur + 1) % len(r.URLs) // the next node, if there are several
		r.Logger.Warn("replica: reconnecting", "err", err, "in", backoff, "to", r.URLs[r.cur])
		r.update(func(s *Status) { s.State, s.Node, s.Error = "reconnecting", r.URLs[r.cur], err.Error() })
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

// session makes sure the local database holds a replica, then applies the
// feed until it fails.
func (r *Replica) session(ctx context.Context) error {
	applied, ok, err := r.Target.Applied()
	if err != nil {
		return err
	}
	if !ok {
		if err := r.download(ctx); err != nil {
			return err
		}
		if applied, _, err = r.Target.Applied(); err != nil {
			return err
		}
	}
	r.update(func(s *Status) { s.State, s.Sequence = "connecting", applied })
	if r.Applied != nil {
		r.Applied(applied)
	}
	if r.done && applied >= r.target {
		return errDone
	}
	return r.follow(ctx, applied)
}

// download fetches a backup into a temporary file and restores the
// target from it.
func (r *Replica) download(ctx context.Context) error {
	r.update(func(s *Status) { s.State = "downloading" })
	resp, err := r.get(ctx, "/db/"+url.PathEscape(r.DB)+"/backup")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	seq, err := strconv.ParseUint(resp.Header.Get("X-Sequence"), 10, 64)
	if err != nil {
		return fmt.Errorf("the backup names no sequence (X-Sequence %q)", resp.Header.Get("X-Sequence"))
	}
	f, err := os.CreateTemp(r.Dir, "hasvc-replica-*.db")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download backup: %w", err)
	}
	if err := r.Target.Restore(tmp, seq); err != nil {
		return fmt.Errorf("restore the downloaded backup: %w", err)
	}
	r.Logger.Info("replica: downloaded the database", "db", r.DB, "sequence", seq)
	return nil
}

// follow applies the change feed after sequence applied.
func (r *Replica) follow(ctx context.Context, applied uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := r.get(ctx, fmt.Sprintf("/db/%s/changes?from=%d", url.PathEscape(r.DB), applied))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var id, typ string
	var data strings.Builder
	logged := time.Now()
	r.Logger.Info("replica: following", "db", r.DB, "node", r.URLs[r.cur], "sequence", applied)
	r.update(func(s *Status) { s.State, s.Node, s.Error = "following", r.URLs[r.cur], "" })
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("change feed: %w", err)
		}
		if time.Since(logged) >= time.Minute { // heartbeats come every 15 s
			st := r.Status()
			r.Logger.Info("replica: following", "db", r.DB, "sequence", applied, "lag_ms", st.Lag)
			logged = time.Now()
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data.WriteString(line[6:])
		case line == "" && typ != "":
			switch typ {
			case "change":
				seq, err := strconv.ParseUint(id, 10, 64)
				if err != nil {
					return fmt.Errorf("change event with id %q", id)
				}
				if seq != applied+1 {
					return fmt.Errorf("change %d after %d", seq, applied)
				}
				var msg change.Message
				if err := json.Unmarshal([]byte(data.String()), &msg); err != nil {
					return fmt.Errorf("change %d: %w", seq, err)
				}
				if err := r.Target.Apply(seq, &msg); err != nil {
					return fmt.Errorf("apply change %d: %w", seq, err)
				}
				applied = seq
				lag := float64(time.Now().UnixNano()-msg.Timestamp) / 1e6
				r.update(func(s *Status) { s.Sequence, s.Lag = seq, lag })
				if r.Applied != nil {
					r.Applied(seq)
				}
				if r.done && applied >= r.target {
					return errDone
				}
			case "trimmed":
				return errRestart
			case "end":
				return errEnded{data.String()}
			}
			id, typ = "", ""
			data.Reset()
		}
	}
}

// lastSeq asks the nodes, in turn, for the database's last sequence.
func (r *Replica) lastSeq(ctx context.Context) (uint64, error) {
	var resp *http.Response
	var err error
	for range r.URLs {
		if resp, err = r.get(ctx, "/databases/"+url.PathEscape(r.DB)); err == nil {
			break
		}
		r.cur = (r.cur + 1) % len(r.URLs)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var info struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return 0, err
	}
	return info.StreamSeq, nil
}

// refusedError is an answer other than 200.
type refusedError struct {
	status int
	body   string
}

func (e *refusedError) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

func (r *Replica) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(r.URLs[r.cur], "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, &refusedError{status: resp.StatusCode, body: strings.TrimSpace(string(body))}
	}
	return resp, nil
}
