package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hasvc/internal/auth"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPGCopy loads and exports through COPY with pgconn's CopyFrom and
// CopyTo (the simple-protocol COPY every libpq-style client speaks), in
// the text and CSV formats, and checks its refusals and its line numbers.
func TestPGCopy(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("cp")
	ctx := context.Background()
	c := n.pgConnect("cp", n.admin)
	if _, err := c.Exec(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BYTEA, ok BOOLEAN)`); err != nil {
		t.Fatal(err)
	}
	pc := c.PgConn()
	text := "1\tann\t1.5\t\\\\x00ff\tt\n2\ttab\\there\t\\N\t\\N\tf\n"
	tag, err := pc.CopyFrom(ctx, strings.NewReader(text), `COPY t FROM STDIN`)
	if err != nil || tag.String() != "COPY 2" {
		t.Fatalf("text copy: %v %q", err, tag)
	}
	csv := "id,name,score,raw,ok\n3,\"comma, \"\"quoted\"\"\nand newline\",2.5,,true\n4,,0,\\x41,false\n"
	tag, err = pc.CopyFrom(ctx, strings.NewReader(csv), `COPY t (id, name, score, raw, ok) FROM STDIN WITH (FORMAT csv, HEADER)`)
	if err != nil || tag.String() != "COPY 2" {
		t.Fatalf("csv copy: %v %q", err, tag)
	}
	var out bytes.Buffer
	if _, err := pc.CopyTo(ctx, &out, `COPY t TO STDOUT WITH (FORMAT csv, HEADER)`); err != nil {
		t.Fatal(err)
	}
	want := "id,name,score,raw,ok\n1,ann,1.5,\\x00ff,t\n2,tab\there,,,f\n3,\"comma, \"\"quoted\"\"\nand newline\",2.5,,t\n4,,0,\\x41,f\n"
	if out.String() != want {
		t.Fatalf("csv out:\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	if _, err := pc.CopyTo(ctx, &out, `COPY (SELECT id, name FROM t WHERE id <= 2 ORDER BY id) TO STDOUT`); err != nil {
		t.Fatal(err)
	}
	if out.String() != "1\tann\n2\ttab\\there\n" {
		t.Fatalf("text out: %q", out.String())
	}

	// A bad line: its number, and what was committed before it.
	bad := "10\ta\n11\tb\n12\n"
	_, err = pc.CopyFrom(ctx, strings.NewReader(bad), `COPY t (id, name) FROM STDIN`)
	wantState(t, err, "22P04")
	if !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("the error does not name the line: %v", err)
	}
	// A duplicate key names its line, as in PostgreSQL, though rows go in
	// by chunks; nothing of the chunk stays.
	_, err = pc.CopyFrom(ctx, strings.NewReader("20\tx\n1\tdup\n"), `COPY t (id, name) FROM STDIN`)
	wantState(t, err, "23505")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(pe.Where, "COPY t, line 2;") {
		t.Fatalf("where: %v", err)
	}
	// The same in a transaction block: the rows before the bad line went
	// in, until ROLLBACK TO undoes them with the rest of the COPY.
	pgExecAll(t, c, "BEGIN", "INSERT INTO t (id, name) VALUES (30, 'kept')", "SAVEPOINT s")
	_, err = c.PgConn().CopyFrom(ctx, strings.NewReader("31\tx\n32\ty\n1\tdup\n33\tz\n"), `COPY t (id, name) FROM STDIN`)
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.Where != "COPY t, line 3" {
		t.Fatalf("in a block: %v (%+v)", err, pe)
	}
	pgExecAll(t, c, "ROLLBACK TO s", "COMMIT")
	if got := pgRows(t, c, fmt.Sprint, "SELECT id FROM t WHERE id >= 30 ORDER BY id"); got != "30" {
		t.Fatalf("after ROLLBACK TO: %s", got)
	}
	pgExecAll(t, c, "DELETE FROM t WHERE id = 30")
	// The session goes on.
	var cnt int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err != nil || cnt != 4 {
		t.Fatalf("%d rows, %v", cnt, err)
	}
	for sql, state := range map[string]string{
		`COPY t FROM '/etc/passwd'`:              "42501",
		`COPY t TO PROGRAM 'id'`:                 "42501",
		`COPY t FROM STDIN WITH (FORMAT binary)`: "0A000",
		`COPY nope FROM STDIN`:                   "42P01",
	} {
		_, err := pc.CopyFrom(ctx, strings.NewReader(""), sql)
		wantState(t, err, state)
	}
	// pgx's CopyFrom speaks the binary format: refused plainly.
	_, err = c.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"id"}, pgx.CopyFromRows([][]any{{int32(99)}}))
	wantState(t, err, "0A000")

	// Larger than one transaction's 8 MB message outside a block: chunks.
	if _, err := c.Exec(ctx, `CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT)`); err != nil {
		t.Fatal(err)
	}
	var load bytes.Buffer
	pad := strings.Repeat("p", 100)
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&load, "%d\t%s\n", i, pad)
	}
	tag, err = pc.CopyFrom(ctx, &load, `COPY big FROM STDIN`)
	if err != nil || tag.String() != "COPY 100000" {
		t.Fatalf("10 MB copy: %v %q", err, tag)
	}
	// Inside a transaction block COPY is part of the block.
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.CopyFrom(ctx, strings.NewReader("30\tin a block\n"), `COPY t (id, name) FROM STDIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&cnt); err != nil || cnt != 4 {
		t.Fatalf("after a rolled-back COPY: %d rows, %v", cnt, err)
	}
	// A read token may COPY TO, not FROM.
	reader := n.pgConnect("cp", n.token(auth.PermRead, time.Hour, "cp"))
	_, err = reader.PgConn().CopyFrom(ctx, strings.NewReader("5\tx\n"), `COPY t (id, name) FROM STDIN`)
	wantState(t, err, "42501")
}

// TestPGCopyPsql runs psql's \copy both ways with a CSV file, against
// hasvc and PostgreSQL.
func TestPGCopyPsql(t *testing.T) {
	psql := needTool(t, "psql")
	onBothServers(t, func(t *testing.T, s pgServer) {
		s.createDB(t, "pcp")
		dir := t.TempDir()
		in := filepath.Join(dir, "in.csv")
		os.WriteFile(in, []byte("id,name\n1,\"a, b\"\n2,\n"), 0o644)
		outFile := filepath.Join(dir, "out.csv")
		out, err := s.run("pcp", psql, "-X", "-v", "ON_ERROR_STOP=1",
			"-c", "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT)",
			"-c", `\copy p from '`+in+`' with (format csv, header)`,
			"-c", `\copy p to '`+outFile+`' with (format csv, header)`)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "COPY 2") {
			t.Fatalf("psql said %s", out)
		}
		got, _ := os.ReadFile(outFile)
		if string(got) != "id,name\n1,\"a, b\"\n2,\n" {
			t.Fatalf("exported %q", got)
		}
		// A bad line fails the whole COPY, and the error names the line.
		bad := filepath.Join(dir, "bad.csv")
		os.WriteFile(bad, []byte("3,c\n4,d\nfive,e\n"), 0o644)
		out, err = s.run("pcp", psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy p from '`+bad+`' with (format csv)`)
		if err == nil || !strings.Contains(out, "line 3") {
			t.Fatalf("bad line: %v\n%s", err, out)
		}
		out, err = s.run("pcp", psql, "-X", "-A", "-t", "-c", "SELECT count(*) FROM p")
		if err != nil || strings.TrimSpace(out) != "2" {
			t.Fatalf("after the failed COPY: %q %v", out, err)
		}
	})
}
