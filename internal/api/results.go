package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"hasvc/internal/change"
	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// The response of POST /db/<name>: the ancestor's shape, with the stream
// sequence of a write:
//
//	{"results":[{"columns":[...],"rows":[[...],...]},...],"sequence":N}
//
// A read's rows are encoded as the reader steps through them
// (resultStream). Up to streamAfter bytes are kept, so a small result
// answers with the right status whatever happens; past that the response
// is sent as it grows, so a large result costs the node a row and a
// buffer, not the whole result. If such a read then fails (its time limit,
// the result limit), the status has gone: the body ends with an "error"
// member ({"code", "message"}) and the connection is cut before the end of
// the chunked body, so no client mistakes it for a complete answer.

// streamAfter is how much of a read's response is kept before it is sent
// as it is produced.
const streamAfter = 1 << 20

// resultStream is the sqlite.Sink that encodes a read's results into the
// response.
type resultStream struct {
	c       echo.Context
	buf     []byte
	started bool // the status and some of the body have been sent
	n       int  // statements begun
	inRows  bool // inside a statement's rows
	rows    int  // rows of the current statement
}

func (r *resultStream) Columns(names, _ []string) error {
	r.begin()
	r.buf = appendColumns(r.buf, names)
	r.buf = append(r.buf, `,"rows":[`...)
	r.rows, r.inRows = 0, true
	return nil
}

func (r *resultStream) Row(values []any) error {
	if r.rows > 0 {
		r.buf = append(r.buf, ',')
	}
	r.rows++
	r.buf = appendRow(r.buf, values)
	if len(r.buf) >= streamAfter {
		return r.flush()
	}
	return nil
}

func (r *resultStream) Done(res *sqlite.Result) error {
	if res.HasRows() {
		r.buf = append(r.buf, "]}"...)
		r.inRows = false
		return nil
	}
	r.begin()
	r.buf = appendAffected(r.buf, res)
	return nil
}

// begin opens the response, or the next statement's result.
func (r *resultStream) begin() {
	if r.n == 0 {
		r.buf = append(r.buf, `{"results":[`...)
	} else {
		r.buf = append(r.buf, ',')
	}
	r.n++
}

// flush sends what is buffered, the status first; a client that does not
// read it within responseWriteTime fails the request.
func (r *resultStream) flush() error {
	w := r.c.Response()
	if !r.started {
		w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		w.WriteHeader(http.StatusOK)
		r.started = true
	}
	writeDeadline(r.c, responseWriteTime)
	if _, err := w.Write(r.buf); err != nil {
		return err
	}
	w.Flush()
	r.buf = r.buf[:0]
	return nil
}

// finish ends a read that succeeded.
func (r *resultStream) finish() error {
	if r.n == 0 {
		r.buf = append(r.buf, `{"results":[`...)
	}
	r.buf = append(r.buf, "]}\n"...)
	if !r.started {
		writeDeadline(r.c, responseWriteTime)
		return r.c.Blob(http.StatusOK, echo.MIMEApplicationJSON, r.buf)
	}
	return r.flush()
}

// fail answers a request that failed: with its error if nothing was sent,
// else as the package comment says.
func (r *resultStream) fail(err error) error {
	if !r.started {
		return err
	}
	if r.inRows {
		r.buf = append(r.buf, "]}"...)
	}
	r.buf = append(r.buf, `],"error":{"code":`...)
	r.buf = change.AppendString(r.buf, tenant.ErrorCode(err))
	r.buf = append(r.buf, `,"message":`...)
	r.buf = change.AppendString(r.buf, tenant.ErrorMessage(err))
	r.buf = append(r.buf, "}}\n"...)
	r.flush()
	panic(http.ErrAbortHandler)
}

// appendResults encodes the results of a request that wrote (or of a read
// made without a sink).
func appendResults(buf []byte, res *engine.ExecResult) []byte {
	buf = append(buf, `{"results":[`...)
	for i := range res.Results {
		r := &res.Results[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		if !r.HasRows() {
			buf = appendAffected(buf, r)
			continue
		}
		buf = appendColumns(buf, r.Columns)
		buf = append(buf, `,"rows":[`...)
		for j, row := range r.Rows {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = appendRow(buf, row)
		}
		buf = append(buf, "]}"...)
	}
	buf = append(buf, ']')
	if res.Seq > 0 {
		buf = append(buf, `,"sequence":`...)
		buf = strconv.AppendUint(buf, res.Seq, 10)
	}
	if res.Queued {
		buf = append(buf, `,"queued":true`...)
	}
	return append(buf, "}\n"...)
}

// appendColumns opens a result with rows: {"columns":[...]
func appendColumns(buf []byte, columns []string) []byte {
	buf = append(buf, `{"columns":[`...)
	for j, c := range columns {
		if j > 0 {
			buf = append(buf, ',')
		}
		buf = change.AppendString(buf, c)
	}
	return append(buf, ']')
}

// appendRow encodes one row as an array.
func appendRow(buf []byte, row []any) []byte {
	buf = append(buf, '[')
	for k, v := range row {
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = change.AppendValue(buf, v)
	}
	return append(buf, ']')
}

// appendAffected encodes the result of a statement without rows.
func appendAffected(buf []byte, r *sqlite.Result) []byte {
	buf = append(buf, `{"columns":["rows_affected","last_insert_id"],"rows":[[`...)
	buf = strconv.AppendInt(buf, r.RowsAffected, 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, r.LastInsertID, 10)
	return append(buf, "]]}"...)
}
