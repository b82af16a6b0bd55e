package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/change"
	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// statement is one statement of a POST /db/<name> body, as decoded with
// UseNumber.
type statement struct {
	SQL    *string `json:"sql"`
	Params any     `json:"params"`
}

// query serves POST /db/<name>: a statement object or an array of them,
// run as one transaction.
func (s *Server) query(c echo.Context) error {
	name := c.Param("name")
	p, err := s.principal(c, name, auth.PermRead)
	if err != nil {
		return err
	}
	release, err := s.admit(c, name)
	if err != nil {
		return err
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.MaxBodyBytes))
	if err != nil {
		return err
	}
	stmts, err := parseStatements(body)
	if err != nil {
		return err
	}
	opts, err := execOptions(c)
	if err != nil {
		return err
	}
	opts.ReadOnly = p.Perm < auth.PermWrite
	out := &resultStream{c: c}
	opts.Sink = out
	res, err := s.DB.Exec(c.Request().Context(), name, stmts, opts)
	if err != nil {
		return out.fail(err)
	}
	if res.Streamed {
		return out.finish()
	}
	writeDeadline(c, responseWriteTime)
	if res.Replayed {
		// The request's Idempotency-Key had committed: this is that
		// commit's answer, and nothing ran now.
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, appendResults(make([]byte, 0, 256), res))
}

// execOptions reads the read-consistency options of a request:
// min_seq=N (or the header X-Hasvc-Min-Seq) waits until this node has
// applied sequence N; consistency=strong waits until it has applied every
// write acknowledged before the request; timeout bounds the wait.
func execOptions(c echo.Context) (engine.ExecOptions, error) {
	var opts engine.ExecOptions
	minSeq := c.QueryParam("min_seq")
	if minSeq == "" {
		minSeq = c.Request().Header.Get("X-Hasvc-Min-Seq")
	}
	if minSeq != "" {
		n, err := strconv.ParseUint(minSeq, 10, 64)
		if err != nil {
			return opts, tenant.Errorf(tenant.EINVALID, "min_seq %q: want a stream sequence", minSeq)
		}
		opts.MinSeq = n
	}
	switch c.QueryParam("consistency") {
	case "", "local":
	case "strong":
		opts.Strong = true
	default:
		return opts, tenant.Errorf(tenant.EINVALID, "consistency %q: want local or strong", c.QueryParam("consistency"))
	}
	if t := c.QueryParam("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 || d > time.Minute {
			return opts, tenant.Errorf(tenant.EINVALID, "timeout %q: want a duration up to 1m, such as 2s", t)
		}
		opts.Wait = d
	}
	switch keys := c.Request().Header.Values("Idempotency-Key"); {
	case len(keys) > 1:
		return opts, tenant.Errorf(tenant.EINVALID, "a request has one Idempotency-Key, not %d", len(keys))
	case len(keys) == 1 && keys[0] != "":
		if err := engine.CheckRequestKey(keys[0]); err != nil {
			return opts, err
		}
		opts.Key = keys[0]
	}
	return opts, nil
}

var errExtraData = errors.New("data after the statements")

// parseStatements decodes a body holding one statement object or an array
// of them.
func parseStatements(body []byte) ([]sqlite.Statement, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, tenant.Errorf(tenant.EINVALID, "empty body: want {\"sql\": ...} or an array of them")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw []statement
	var err error
	if body[0] == '[' {
		err = dec.Decode(&raw)
	} else {
		raw = make([]statement, 1)
		err = dec.Decode(&raw[0])
	}
	if err == nil && dec.More() {
		err = errExtraData
	}
	if err != nil {
		return nil, tenant.Wrap(tenant.EINVALID, err, "invalid JSON body: "+jsonProblem(err))
	}
	if len(raw) == 0 {
		return nil, tenant.Errorf(tenant.EINVALID, "no statements")
	}
	out := make([]sqlite.Statement, len(raw))
	for i, r := range raw {
		if r.SQL == nil {
			return nil, tenant.AtStatement(tenant.Errorf(tenant.EINVALID, "missing \"sql\""), i)
		}
		params, err := parseParams(r.Params)
		if err != nil {
			return nil, tenant.AtStatement(err, i)
		}
		out[i] = sqlite.Statement{SQL: *r.SQL, Params: params}
	}
	return out, nil
}

// parseParams converts params: an array of positional values or an object
// of named ones, whose keys may carry a ':', '@' or '$' prefix.
func parseParams(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []any:
		for i, e := range x {
			val, err := change.ValueFromJSON(e)
			if err != nil {
				return nil, tenant.Errorf(tenant.EINVALID, "param %d: %v", i+1, err)
			}
			x[i] = val
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			val, err := change.ValueFromJSON(e)
			if err != nil {
				return nil, tenant.Errorf(tenant.EINVALID, "param %s: %v", k, err)
			}
			key := k
			if len(key) > 0 && (key[0] == ':' || key[0] == '@' || key[0] == '$') {
				key = key[1:]
			}
			if _, dup := out[key]; dup {
				return nil, tenant.Errorf(tenant.EINVALID, "param %s given twice", key)
			}
			out[key] = val
		}
		return out, nil
	}
	return nil, tenant.Errorf(tenant.EINVALID, "params must be an array or an object")
}

// backup serves GET /db/<name>/backup: a consistent SQLite file.
func (s *Server) backup(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	release, err := s.admit(c, name)
	if err != nil {
		return err
	}
	defer release()
	format := c.QueryParam("format")
	if format != "" && format != "sqlite" && format != "sql" {
		return tenant.Errorf(tenant.EINVALID, "format %q: want sqlite or sql", format)
	}
	f, err := s.DB.Backup(c.Request().Context(), name)
	if err != nil {
		return err
	}
	defer f.Close()
	if format == "sql" {
		return dump(c, name, f)
	}
	return sendFile(c, name, f)
}

// sendFile answers with a copy of database name (a backup or a
// snapshot) as a SQLite file to save.
func sendFile(c echo.Context, name string, f *engine.BackupFile) error {
	h := c.Response().Header()
	h.Set("Content-Type", "application/vnd.sqlite3")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.db"`, name, f.Seq))
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("X-Sequence", strconv.FormatUint(f.Seq, 10))
	h.Set("X-Hasvc-Sequence", strconv.FormatUint(f.Seq, 10))
	// A minute, plus a second per megabyte: a slow reader, not a stuck one.
	writeDeadline(c, time.Minute+time.Duration(f.Size>>20)*time.Second)
	c.Response().WriteHeader(http.StatusOK)
	_, err := io.Copy(c.Response(), f)
	return err
}

// dump answers GET /db/<name>/backup?format=sql: the backup as SQL text
// (engine.WriteDump), gzip-compressed when the client accepts it.
func dump(c echo.Context, name string, f *engine.BackupFile) error {
	h := c.Response().Header()
	h.Set("Content-Type", "application/sql; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.sql"`, name, f.Seq))
	h.Set("X-Hasvc-Sequence", strconv.FormatUint(f.Seq, 10))
	h.Set("X-Sequence", strconv.FormatUint(f.Seq, 10))
	writeDeadline(c, time.Minute+time.Duration(f.Size>>20)*2*time.Second)
	var w io.Writer = c.Response()
	var zw *gzip.Writer
	if strings.Contains(c.Request().Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		zw = gzip.NewWriter(w)
		w = zw
	}
	c.Response().WriteHeader(http.StatusOK)
	err := engine.WriteDump(w, f.Name())
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err != nil {
		// The status has gone out: cut the connection, so the client
		// sees a truncated response rather than a short dump.
		panic(http.ErrAbortHandler)
	}
	return nil
}
