// Package replica keeps a local SQLite file a live, read-only copy of one
// hasvc database, over the HTTP API a user has: it starts from a backup
// (GET /db/<name>/backup, which names its sequence) and then applies every
// transaction of the change feed (GET /db/<name>/changes) in stream order,
// each in one local transaction together with its sequence, so the file
// is always a state the database had, and resumes where it stopped.
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
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
)

// Replica follows database DB at URLs into File.
type Replica struct {
	// URLs are the nodes to read from, e.g. http://127.0.0.1:8080: the
	// first, and the next one each time a connection fails.
	URLs   []string
	DB     string
	Token  string // a read token for DB
	File   string
	Client *http.Client
	Logger *slog.Logger

	// Applied, if set, is called with the file's sequence when the
	// replica starts following, and after each transaction it applies.
	Applied func(seq uint64)

	// Until, if set, ends Run once the file has applied that sequence;
	// with Once, Run ends once it has applied what the database held
	// when it started.
	Until uint64
	Once  bool

	cur    int    // index in URLs of the node in use
	target uint64 // Until, or the sequence Once found
	done   bool   // there is a target
}

// badFileError: the local file cannot be a replica; retrying would not
// help.
type badFileError struct{ err error }

func (e badFileError) Error() string { return e.err.Error() }

// errDone: the file reached Until.
var errDone = errors.New("caught up")

// stateTable holds the sequence the local file has applied. The backup a
// replica starts from has no _hasvc_ tables of its own.
const stateTable = "_hasvc_replica"

// errRestart: the feed's next sequence was trimmed; start again from a
// new backup.
var errRestart = errors.New("the stream no longer holds the next sequence")

// errEnded: the node ended the feed for good (the token expired or was
// revoked): retrying would not help.
type errEnded struct{ reason string }

func (e errEnded) Error() string { return "the node ended the change feed: " + e.reason }

// Run keeps the file in sync until ctx ends, reconnecting after network
// failures; it returns early only if the node refuses for good (the token
// is no longer valid, or the database is gone).
func (r *Replica) Run(ctx context.Context) error {
	if r.Client == nil {
		r.Client = http.DefaultClient
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if len(r.URLs) == 0 {
		return errors.New("no node to read from")
	}
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
		var bad badFileError
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
			if err := removeFile(r.File); err != nil {
				return err
			}
			backoff = 100 * time.Millisecond
			continue
		}
		r.cur = (r.cur + 1) % len(r.URLs) // the next node, if there are several
		r.Logger.Warn("replica: reconnecting", "err", err, "in", backoff, "to", r.URLs[r.cur])
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

// session makes sure the file exists, then applies the feed until it
// fails.
func (r *Replica) session(ctx context.Context) error {
	if _, err := os.Stat(r.File); errors.Is(err, os.ErrNotExist) {
		if err := r.download(ctx); err != nil {
			return err
		}
	}
	c, err := sqlite.Open(r.File, sqlite.Options{})
	if err != nil {
		return badFileError{err}
	}
	defer c.Close()
	applied, err := c.QueryInt64("SELECT seq FROM " + stateTable)
	if err != nil {
		return badFileError{fmt.Errorf("%s is not a replica of a hasvc database (%w); remove it, or choose another file, to start one", r.File, err)}
	}
	if r.Applied != nil {
		r.Applied(uint64(applied))
	}
	if r.done && uint64(applied) >= r.target {
		return errDone
	}
	return r.follow(ctx, c, uint64(applied))
}

// download fetches a backup into a temporary file beside File, records
// its sequence and renames it into place.
func (r *Replica) download(ctx context.Context) error {
	resp, err := r.get(ctx, "/db/"+url.PathEscape(r.DB)+"/backup")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	seq, err := strconv.ParseUint(resp.Header.Get("X-Sequence"), 10, 64)
	if err != nil {
		return fmt.Errorf("the backup names no sequence (X-Sequence %q)", resp.Header.Get("X-Sequence"))
	}
	f, err := os.CreateTemp(filepath.Dir(r.File), filepath.Base(r.File)+".download-*")
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
	c, err := sqlite.Open(tmp, sqlite.Options{})
	if err != nil {
		return err
	}
	err = c.Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
	if err == nil {
		err = c.Exec("CREATE TABLE " + stateTable + " (seq INTEGER NOT NULL)")
	}
	if err == nil {
		err = c.Exec("INSERT INTO "+stateTable+" (seq) VALUES (?)", int64(seq))
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("prepare the downloaded backup: %w", err)
	}
	r.Logger.Info("replica: downloaded the database", "db", r.DB, "sequence", seq)
	// A WAL left beside the path belongs to the file this one replaces:
	// SQLite would replay it into the new one.
	if err := removeFile(r.File); err != nil {
		return err
	}
	return os.Rename(tmp, r.File)
}

// removeFile removes a SQLite file and its WAL and shared-memory files.
func removeFile(path string) error {
	for _, p := range []string{path + "-wal", path + "-shm", path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// follow applies the change feed after sequence applied to c.
func (r *Replica) follow(ctx context.Context, c *sqlite.Conn, applied uint64) error {
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
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("change feed: %w", err)
		}
		if time.Since(logged) >= time.Minute { // heartbeats come every 15 s
			r.Logger.Info("replica: following", "db", r.DB, "sequence", applied)
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
				if err := apply(c, seq, data.String()); err != nil {
					return fmt.Errorf("apply change %d: %w", seq, err)
				}
				applied = seq
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

// apply applies one transaction's message in one local transaction with
// its sequence.
func apply(c *sqlite.Conn, seq uint64, data string) error {
	var msg change.Message
	if err := json.Unmarshal([]byte(data), &msg); err != nil {
		return err
	}
	if err := c.ApplyMode(true); err != nil {
		return err
	}
	defer c.ApplyMode(false)
	if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err := c.ApplyChanges(msg.Changes, false)
	if err == nil {
		err = c.Exec("UPDATE "+stateTable+" SET seq = ?", int64(seq))
	}
	if err == nil {
		err = c.Exec("COMMIT")
	}
	if err != nil {
		c.Exec("ROLLBACK")
	}
	return err
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
