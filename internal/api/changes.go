package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/change"
	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// The change feed: GET /db/<name>/changes as Server-Sent Events, one
// event per committed transaction (its stream message, the documented
// format), id = its stream sequence. ?from=<seq> (or Last-Event-ID, which
// a reconnecting EventSource sends) resumes after that sequence with no
// gap and no duplicate; without either the feed starts with the next
// write. ?tables=a,b keeps those tables' row changes (and skips
// transactions with none); ?format=rows sends one event per row change,
// the id on each transaction's last. A comment every heartbeat keeps
// proxies from closing an idle stream; the stream ends when the token
// expires or is revoked, and with an event "trimmed" when the sequences
// asked for are no longer in the stream.

// feedHeartbeat is how often an idle feed sends a comment.
const feedHeartbeat = 15 * time.Second

func (s *Server) changes(c echo.Context) error {
	name := c.Param("name")
	p, err := s.principal(c, name, auth.PermRead)
	if err != nil {
		return err
	}
	after, fromEnd := uint64(0), true
	for _, v := range []string{c.QueryParam("from"), c.Request().Header.Get("Last-Event-ID")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return tenant.Errorf(tenant.EINVALID, "from %q: want a stream sequence", v)
		}
		after, fromEnd = n, false
	}
	var tables map[string]bool
	if v := c.QueryParam("tables"); v != "" {
		tables = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			tables[strings.TrimSpace(t)] = true
		}
	}
	rows := false
	switch f := c.QueryParam("format"); f {
	case "", "transactions":
	case "rows":
		rows = true
	default:
		return tenant.Errorf(tenant.EINVALID, "format %q: want transactions or rows", f)
	}
	ctx := c.Request().Context()
	feed, err := s.DB.Feed(ctx, name, after, fromEnd)
	var trimmed *engine.TrimmedError
	if err != nil && !errors.As(err, &trimmed) {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	c.Response().WriteHeader(http.StatusOK)
	w := &sseWriter{c: c}
	if trimmed != nil {
		return w.trimmed(trimmed)
	}
	defer feed.Stop()
	w.comment(fmt.Sprintf("change feed of %s from sequence %d", name, feed.First))
	if w.err != nil {
		return nil
	}

	type next struct {
		seq  uint64
		data []byte
		err  error
	}
	// One message at a time from the feed: Next blocks, so it runs here
	// and hands over through a channel of one.
	msgs := make(chan next, 1)
	go func() {
		for {
			seq, data, err := feed.Next()
			select {
			case msgs <- next{seq, data, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	token, _ := bearerToken(c.Request())
	if token == "" {
		token = c.QueryParam("access_token")
	}
	expiry := time.NewTimer(time.Until(p.ExpiresAt))
	defer expiry.Stop()
	check := time.NewTicker(time.Second) // revocation
	defer check.Stop()
	idle := time.Now()
	for w.err == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			w.comment("this node is shutting down: reconnect")
			return nil
		case <-expiry.C:
			w.event("", "end", `{"reason":"the token expired"}`)
			return nil
		case <-check.C:
			if _, err := s.Auth.Verify(token); err != nil {
				w.event("", "end", `{"reason":"the token is no longer valid"}`)
				return nil
			}
			if time.Since(idle) >= feedHeartbeat {
				w.comment("keep-alive")
				idle = time.Now()
			}
		case m := <-msgs:
			if m.err != nil {
				if errors.As(m.err, &trimmed) {
					return w.trimmed(trimmed)
				}
				w.event("", "end", `{"reason":"the feed failed; reconnect"}`)
				return nil
			}
			w.message(m.seq, m.data, tables, rows)
			idle = time.Now()
		}
	}
	return nil
}

// sseWriter writes Server-Sent Events, each flushed at once; err is the
// first write error (the client went away).
type sseWriter struct {
	c   echo.Context
	err error
}

func (w *sseWriter) write(s string) {
	if w.err != nil {
		return
	}
	// A client that does not read for half a minute is dropped.
	writeDeadline(w.c, 30*time.Second)
	if _, err := w.c.Response().Write([]byte(s)); err != nil {
		w.err = err
		return
	}
	w.c.Response().Flush()
}

func (w *sseWriter) comment(text string) { w.write(": " + text + "\n\n") }

// event writes one event; an empty id leaves the client's last id as it
// is.
func (w *sseWriter) event(id, typ, data string) {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + typ + "\ndata: " + data + "\n\n")
	w.write(b.String())
}

func (w *sseWriter) trimmed(t *engine.TrimmedError) error {
	data, _ := json.Marshal(map[string]any{"requested": t.Requested, "first_seq": t.First, "message": t.Error()})
	w.event("", "trimmed", string(data))
	return nil
}

// message writes one transaction: as it is stored, or filtered by table,
// or as one event per row.
func (w *sseWriter) message(seq uint64, data []byte, tables map[string]bool, rows bool) {
	id := strconv.FormatUint(seq, 10)
	if tables == nil && !rows {
		w.event(id, "change", string(data))
		return
	}
	var m change.Message
	if err := json.Unmarshal(data, &m); err != nil {
		w.event(id, "change", string(data))
		return
	}
	if tables != nil {
		kept := m.Changes[:0]
		for _, ch := range m.Changes {
			if ch.Operation != change.OpSQL && tables[ch.Table] {
				kept = append(kept, ch)
			}
		}
		m.Changes = kept
		if len(kept) == 0 {
			return // nothing to see; a resume from an older id skips it again
		}
	}
	if !rows {
		b, _ := json.Marshal(m)
		w.event(id, "change", string(b))
		return
	}
	for i, ch := range m.Changes {
		b, _ := json.Marshal(map[string]any{"sequence": seq, "node": m.Node, "timestamp_ns": m.Timestamp, "change": ch})
		rid := ""
		if i == len(m.Changes)-1 {
			rid = id // resuming after it means after the whole transaction
		}
		w.event(rid, "row", string(b))
	}
}
