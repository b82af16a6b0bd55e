package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// shellRun runs hasvc sql on db with stdin as its input (a pipe, not a
// terminal) and returns its exit status and output.
func shellRun(t *testing.T, n *node, db, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"HA_URL": n.url, "HA_TOKEN": n.admin}
	code := runSQL(append(args, db), func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSQLShellScript(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	dir := t.TempDir()
	included := filepath.Join(dir, "more.sql")
	if err := os.WriteFile(included, []byte("INSERT INTO items(name) VALUES ('from .read');\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "shop.db")
	script := `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB);
-- a comment; with a semicolon
INSERT INTO items(name, price, data) VALUES ('pen; blue', 1.5, x'00ff'),
  ('it''s', 2.0, NULL);
CREATE TRIGGER items_upper AFTER INSERT ON items BEGIN
  UPDATE items SET name = upper(name) WHERE id = new.id AND name = 'shout';
END;
INSERT INTO items(name) VALUES ('shout');
SELECT id, name, price, data FROM items ORDER BY id;
.mode csv
SELECT id, name FROM items WHERE id <= 2 ORDER BY id;
.mode json
SELECT id, price, data FROM items WHERE id = 1;
.mode line
SELECT id, name FROM items WHERE id = 2;
.mode table
.tables
.schema items
BEGIN;
INSERT INTO items(name) VALUES ('in a transaction 1');
INSERT INTO items(name) VALUES ('in a transaction 2');
COMMIT;
BEGIN;
INSERT INTO items(name) VALUES ('rolled back');
ROLLBACK;
.read ` + included + `
.backup ` + backup + `
.timer on
SELECT count(*) AS n FROM items;
`
	code, out, errOut := shellRun(t, n, "shop", script)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q, out:\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"| id | name      | price | data    |\n",
		"|  1 | pen; blue |   1.5 | X'00FF' |\n",
		"|  2 | it's      |   2.0 | NULL    |\n",
		"|  3 | SHOUT     | NULL  | NULL    |\n",
		"id,name\n1,pen; blue\n2,it's\n",
		`[{"id":1,"price":1.5,"data":{"blob":"AP8="}}]` + "\n",
		"  id = 2\nname = it's\n",
		"items\n",
		"CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB);\nCREATE TRIGGER items_upper AFTER INSERT ON items BEGIN\n",
		"| 6 |\n",
		"Run Time: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rows_affected") {
		t.Errorf("writes printed their counts:\n%s", out)
	}
	// The transaction went as one request: one sequence for both rows.
	if got := n.ok("POST", "/db/shop", `{"sql":"SELECT count(*) FROM items WHERE name LIKE 'in a transaction%' OR name = 'rolled back'"}`); !strings.Contains(got, "[[2]]") {
		t.Errorf("transaction rows: %s", got)
	}
	if got := sqlite3Shell(t, backup, "SELECT count(*) FROM items"); strings.TrimSpace(got) != "6" {
		t.Errorf(".backup file has %s rows, want 6", got)
	}

	// An error stops a script with exit status 1; later statements do not run.
	code, out, errOut = shellRun(t, n, "shop", "INSERT INTO items(name) VALUES ('before');\nSELECT * FROM nope;\nINSERT INTO items(name) VALUES ('after');\n")
	if code != 1 || !strings.Contains(errOut, "no such table: nope (EINVALID)") {
		t.Errorf("error: exit %d, stderr %q, out %q", code, errOut, out)
	}
	if got := n.ok("POST", "/db/shop", `{"sql":"SELECT group_concat(name) FROM items WHERE name IN ('before', 'after')"}`); !strings.Contains(got, `[["before"]]`) {
		t.Errorf("after an error: %s", got)
	}
	// A failing statement inside BEGIN..COMMIT names itself; nothing commits.
	code, _, errOut = shellRun(t, n, "shop", "BEGIN;\nINSERT INTO items(name) VALUES ('tx');\nINSERT INTO nope VALUES (1);\nCOMMIT;\n")
	if code != 1 || !strings.Contains(errOut, "in statement 2: INSERT INTO nope VALUES (1);") {
		t.Errorf("error in a transaction: exit %d, stderr %q", code, errOut)
	}
	if got := n.ok("POST", "/db/shop", `{"sql":"SELECT count(*) FROM items WHERE name = 'tx'"}`); !strings.Contains(got, "[[0]]") {
		t.Errorf("a failed transaction committed: %s", got)
	}
	for _, c := range []struct{ name, in, want string }{
		{"incomplete", "SELECT 1", "incomplete statement"},
		{"open transaction", "BEGIN;\nINSERT INTO items(name) VALUES ('x');\n", "inside a transaction"},
		{"unknown command", ".frobnicate\n", "unknown command .frobnicate"},
		{"bad mode", ".mode html\n", `unknown mode "html"`},
		{"sandbox", "PRAGMA journal_mode=delete;\n", "EFORBIDDEN"},
		{"missing file", ".read /nonexistent/file.sql\n", "no such file"},
	} {
		code, _, errOut := shellRun(t, n, "shop", c.in)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.name, code, errOut, c.want)
		}
	}
	if code, _, _ := shellRun(t, n, "shop", ".quit\nSELECT * FROM nope;\n"); code != 0 {
		t.Errorf(".quit: exit %d", code)
	}
	// No token, or a wrong one.
	var errOut2 bytes.Buffer
	if code := runSQL([]string{"shop"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, &errOut2); code != 2 || !strings.Contains(errOut2.String(), "a token is needed") {
		t.Errorf("no token: exit %d, %q", code, errOut2.String())
	}
	code, _, errOut = shellRun(t, n, "shop", "SELECT 1;\n", "--token", "bad")
	if code != 1 || !strings.Contains(errOut, "EUNAUTHORIZED") {
		t.Errorf("bad token: exit %d, %q", code, errOut)
	}
}

// lockedBuffer collects a process's output while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSQLShellTerminal drives hasvc sql through a pseudo-terminal: a
// statement over two lines, line editing, the history (up arrow, and the
// history file), .quit.
func TestSQLShellTerminal(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("notes")
	home := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "HASVC_TEST_RUN_MAIN=1", "HASVC_TEST_ARGS=sql --url "+n.url+" notes",
		"HA_TOKEN="+n.admin, "HOME="+home, "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out lockedBuffer
	go io.Copy(&out, tty)
	waitOut := func(what string, count int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(out.String(), what) < count {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (x%d) on the terminal; it shows:\n%s", what, count, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := tty.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	waitOut("notes> ", 1)
	send("SELECT 1 +\r")
	waitOut("...> ", 1)
	send(" 2 AS three;\r")
	waitOut("|     3 |", 1)
	// Backspace edits the line: 40, rubbed out to 4, then 45.
	send("SELECT 40\x7f5 AS v;\r")
	waitOut("| 45 |", 1)
	// The up arrow brings the last line back.
	waitOut("notes> ", 3)
	send("\x1b[A\r")
	waitOut("| 45 |", 2)
	send(".quit\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hasvc sql exited: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf(".quit did not end the shell:\n%s", out.String())
	}
	hist, err := os.ReadFile(filepath.Join(home, ".hasvc_history"))
	if err != nil || !strings.Contains(string(hist), "SELECT 45 AS v;") {
		t.Errorf("history file: %q, %v", hist, err)
	}
}
