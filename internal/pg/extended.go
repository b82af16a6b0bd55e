package pg

// The extended query protocol: Parse, Bind, Describe, Execute and Close of
// prepared statements and portals, and the rows they send.

import (
	"errors"
	"hasvc/internal/sqlite"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rowDescription builds a RowDescription with the result formats a Bind
// asked for (nil: text).
func rowDescription(cols []column, formats []int16) *pgproto3.RowDescription {
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, c := range cols {
		fields[i] = pgproto3.FieldDescription{
			Name:         []byte(c.name),
			DataTypeOID:  c.oid,
			DataTypeSize: typeLen(c.oid),
			TypeModifier: -1,
			Format:       formatOf(formats, i),
		}
	}
	return &pgproto3.RowDescription{Fields: fields}
}

// formatOf is the format of parameter or result column i: Bind gives none
// (text), one for all, or one per column.
func formatOf(formats []int16, i int) int16 {
	switch len(formats) {
	case 0:
		return 0
	case 1:
		return formats[0]
	}
	if i < len(formats) {
		return formats[i]
	}
	return 0
}

// sendRow sends one DataRow.
func (ss *session) sendRow(row []any, cols []column, formats []int16) error {
	buf := ss.rowBuf[:0]
	// Offsets first: buf may grow while values are appended.
	var offs [64]int
	ends := offs[:0]
	var err error
	for i, v := range row {
		if v != nil {
			if formatOf(formats, i) == 1 {
				buf, err = appendBinary(buf, v, cols[i].oid)
				var wide *outOfRange
				if errors.As(err, &wide) {
					return errorf(stateOutOfRange, "column %q: %v", cols[i].name, err)
				} else if err != nil {
					return errorf(stateInvalidText, "column %q: %v", cols[i].name, err)
				}
			} else {
				buf = appendText(buf, v, cols[i].oid)
			}
		}
		ends = append(ends, len(buf))
	}
	vals := ss.rowVals[:0]
	start := 0
	for i, v := range row {
		if v == nil {
			vals = append(vals, nil)
		} else {
			vals = append(vals, buf[start:ends[i]])
		}
		start = ends[i]
	}
	ss.rowBuf, ss.rowVals = buf, vals
	ss.dataRow.Values = vals
	ss.be.Send(&ss.dataRow)
	return nil
}

// parse answers Parse.
func (ss *session) parse(m *pgproto3.Parse) error {
	if m.Name != "" {
		if _, taken := ss.stmts[m.Name]; taken {
			return errorf(stateDupPrepared, "prepared statement %q already exists", m.Name)
		}
	}
	texts := splitStatements(m.Query)
	if len(texts) > 1 {
		return errorf(stateSyntax, "cannot insert multiple commands into a prepared statement")
	}
	text := ""
	if len(texts) == 1 {
		text = texts[0]
	}
	pt := ss.parsedText(text)
	p := new(prepared)
	*p = pt.p // the text's analysis is shared, the rest is this statement's
	if p.err != nil {
		return p.err
	}
	p.paramOIDs = append([]uint32(nil), m.ParameterOIDs...)
	p.nparams = max(p.nparams, len(p.paramOIDs))
	if p.kind == kindSQL {
		if ss.inTx && ss.txFailed {
			return errorf(stateInFailedTx, "current transaction is aborted, commands ignored until end of transaction block")
		}
		ctx, done := ss.statementContext()
		desc, err := ss.describeSQL(ctx, p.run, sqlite.DescribeOptions{})
		if err != nil {
			done()
			return err
		}
		p.desc = desc
		untyped := len(m.ParameterOIDs) == 0
		for len(p.paramOIDs) < p.nparams {
			p.paramOIDs = append(p.paramOIDs, 0)
		}
		switch {
		case !slices.Contains(p.paramOIDs, 0):
		case untyped && pt.inferred != nil && ss.columnsCurrent(pt.inferredGen):
			p.paramOIDs = append(p.paramOIDs[:0], pt.inferred...)
		default:
			p.paramOIDs = inferParams(p.sql, p.paramOIDs, func(table string) []tableColumn { return ss.tableColumns(ctx, table) })
			if untyped {
				pt.inferred, pt.inferredGen = slices.Clone(p.paramOIDs), ss.columnsGen
			}
		}
		done()
	}
	ss.stmts[m.Name] = p
	ss.send(&pgproto3.ParseComplete{})
	return nil
}

// bind answers Bind.
func (ss *session) bind(m *pgproto3.Bind) error {
	p, ok := ss.stmts[m.PreparedStatement]
	if !ok {
		return errorf(stateUndefinedPrepared, "prepared statement %q does not exist", m.PreparedStatement)
	}
	if m.DestinationPortal != "" {
		if _, taken := ss.portals[m.DestinationPortal]; taken {
			return errorf(stateDupCursor, "cursor %q already exists", m.DestinationPortal)
		}
	}
	if len(m.Parameters) != p.nparams {
		return errorf(stateProtocolViolation, "bind message supplies %d parameters, but prepared statement %q requires %d", len(m.Parameters), m.PreparedStatement, p.nparams)
	}
	var params []any
	if len(m.Parameters) > 0 {
		params = make([]any, len(m.Parameters))
		for i, raw := range m.Parameters {
			var oid uint32
			if i < len(p.paramOIDs) {
				oid = p.paramOIDs[i]
			}
			v, err := decodeParam(raw, formatOf(m.ParameterFormatCodes, i), oid)
			if err != nil {
				return errorf(stateInvalidText, "parameter $%d: %v", i+1, err)
			}
			params[i] = v
		}
	}
	ss.portals[m.DestinationPortal] = &portal{stmt: p, params: params, formats: append([]int16(nil), m.ResultFormatCodes...)}
	ss.send(&pgproto3.BindComplete{})
	return nil
}

// describe answers Describe of a statement or a portal.
func (ss *session) describe(m *pgproto3.Describe) error {
	if m.ObjectType == 'S' {
		p, ok := ss.stmts[m.Name]
		if !ok {
			return errorf(stateUndefinedPrepared, "prepared statement %q does not exist", m.Name)
		}
		oids := make([]uint32, p.nparams)
		copy(oids, p.paramOIDs)
		ss.send(&pgproto3.ParameterDescription{ParameterOIDs: oids})
		cols, err := ss.statementColumns(p)
		if err != nil {
			return err
		}
		if cols == nil {
			ss.send(&pgproto3.NoData{})
		} else {
			ss.send(rowDescription(cols, nil))
		}
		return nil
	}
	pt, ok := ss.portals[m.Name]
	if !ok {
		return errorf(stateUndefinedCursor, "portal %q does not exist", m.Name)
	}
	cols := pt.stmt.fields
	switch {
	case pt.stmt.described:
	case ss.deferrable(pt.stmt):
		// Its Execute will wait for Sync: the types come from the
		// statement, not from a run.
		var err error
		if cols, err = ss.statementColumns(pt.stmt); err != nil {
			return err
		}
	default:
		// The types come from the result: run it now; Execute sends it.
		if err := ss.runPortal(pt); err != nil {
			return err
		}
		cols = pt.out.cols
	}
	switch {
	case cols == nil:
		ss.send(&pgproto3.NoData{})
	case len(pt.formats) == 0:
		p := pt.stmt
		if p.textDesc == nil || len(cols) == 0 || len(p.descOf) != len(cols) || &p.descOf[0] != &cols[0] {
			p.textDesc, p.descOf = rowDescription(cols, nil), cols
		}
		ss.send(p.textDesc)
	default:
		ss.send(rowDescription(cols, pt.formats))
	}
	return nil
}

// statementColumns decides, once, the result columns of a prepared
// statement.
func (ss *session) statementColumns(p *prepared) ([]column, error) {
	if p.described {
		return p.fields, nil
	}
	switch p.kind {
	case kindSQL:
		ctx, done := ss.statementContext()
		desc, err := ss.describeSQL(ctx, p.run, sqlite.DescribeOptions{DryRun: true, Params: sampleParams(p.paramOIDs)})
		done()
		if err != nil {
			return nil, err
		}
		p.desc = desc
		if len(desc.Columns) > 0 {
			sample := [][]any{desc.Sample}
			if desc.Sample == nil {
				sample = nil
			}
			p.fields, _ = columnTypes(desc.Columns, ss.declTypes(desc.DeclTypes), sample, p.run)
		}
	case kindShow:
		out, err := ss.show(p.sql)
		if err != nil {
			return nil, err
		}
		p.fields = out.cols
	case kindCatalog:
		ctx, done := ss.statementContext()
		out, err := ss.catalog(ctx, p.sql, nil)
		done()
		if err != nil {
			return nil, err
		}
		p.fields = out.cols
	}
	p.described = true
	return p.fields, nil
}

// sampleParams are the values a dry run binds: one of each parameter's
// type, so that expressions over parameters show their types.
func sampleParams(oids []uint32) []any {
	params := make([]any, len(oids))
	for i, oid := range oids {
		switch oid {
		case oidInt2, oidInt4, oidInt8, oidOID, oidBool:
			params[i] = int64(1)
		case oidFloat4, oidFloat8, oidNumeric:
			params[i] = 1.5
		case oidText, oidVarchar, oidBPChar, oidName:
			params[i] = "a"
		case oidBytea:
			params[i] = []byte{1}
		}
	}
	return params
}

func (ss *session) runPortal(pt *portal) error {
	if pt.out != nil {
		return nil
	}
	ctx, done := ss.statementContext()
	out, err := ss.run(ctx, pt.stmt, pt.params)
	done()
	if err != nil {
		return err
	}
	pt.out = out
	return nil
}

// execute answers Execute: rows up to the limit, then PortalSuspended or
// CommandComplete.
func (ss *session) execute(m *pgproto3.Execute) error {
	pt, ok := ss.portals[m.Portal]
	if !ok {
		return errorf(stateUndefinedCursor, "portal %q does not exist", m.Portal)
	}
	if pt.stmt.kind == kindEmpty {
		ss.send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	if m.MaxRows == 0 && pt.out == nil && ss.deferrable(pt.stmt) {
		ss.deferExecute(pt)
		return nil
	}
	if ss.pipe != nil {
		// What cannot wait for Sync runs after what waits.
		if ss.runPipeline(); ss.skipToSync {
			return nil
		}
	}
	if err := ss.runPortal(pt); err != nil {
		return err
	}
	return ss.sendOutcome(pt, m.MaxRows)
}

// sendOutcome sends a portal's notice and rows, up to maxRows (0: all),
// and then PortalSuspended or CommandComplete.
func (ss *session) sendOutcome(pt *portal, maxRows uint32) error {
	out := pt.out
	if out.notice != "" && pt.pos == 0 {
		ss.be.Send(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: out.noticeCode, Message: out.notice})
	}
	tag := out.tag
	if out.cols != nil {
		// As in PostgreSQL: an Execute that sends as many rows as its
		// limit suspends the portal (even if none are left), and the
		// tag counts the rows of the Execute that completes it.
		if len(out.rows) > 0 && len(out.rows[0]) != len(out.cols) {
			// Described before another request changed the schema
			// under it (a column added to a SELECT *): as PostgreSQL
			// says of a prepared statement whose columns changed.
			return errorf(stateFeatureNotSupp, "cached plan must not change result type")
		}
		start, end := pt.pos, len(out.rows)
		limited := maxRows > 0 && start+int(maxRows) <= end
		if limited {
			end = start + int(maxRows)
		}
		for ; pt.pos < end; pt.pos++ {
			if err := ss.sendRow(out.rows[pt.pos], out.cols, pt.formats); err != nil {
				return err
			}
		}
		if limited {
			ss.be.Send(&pgproto3.PortalSuspended{})
			return nil
		}
		if start > 0 {
			tag = "SELECT " + strconv.Itoa(end-start)
		}
	}
	ss.complete.CommandTag = append(ss.complete.CommandTag[:0], tag...)
	ss.be.Send(&ss.complete)
	return nil
}

// deallocate answers DEALLOCATE [PREPARE] name | ALL.
func (ss *session) deallocate(sql string) (*outcome, error) {
	ws := words(sql)[1:]
	if len(ws) > 0 && ws[0].is("PREPARE") {
		ws = ws[1:]
	}
	if len(ws) == 0 {
		return nil, errorf(stateSyntax, "syntax error at end of input")
	}
	if ws[0].is("ALL") {
		clear(ss.stmts)
		return &outcome{tag: "DEALLOCATE ALL"}, nil
	}
	name := strings.Trim(ws[0].text, `"`)
	if _, ok := ss.stmts[name]; !ok {
		return nil, errorf(stateUndefinedPrepared, "prepared statement %q does not exist", name)
	}
	delete(ss.stmts, name)
	return &outcome{tag: "DEALLOCATE"}, nil
}
