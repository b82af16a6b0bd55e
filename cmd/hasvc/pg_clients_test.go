package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The client tests run real PostgreSQL clients against a node: psql,
// pgbench, psycopg2, psycopg 3, node-postgres and pgjdbc. .ci/run installs
// them and sets HASVC_REQUIRE_CLIENTS=1, which turns a missing client into
// a failure; elsewhere a missing client skips its test.

const clientsDir = "testdata/clients"

// needTool returns the path of a client program, or skips (or fails, when
// clients are required) if it is not installed.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missingClient(t, name)
	}
	return path
}

func needFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missingClient(t, path)
	}
}

func missingClient(t *testing.T, what string) {
	t.Helper()
	unavailable(t, what+" is not installed (.ci/run installs it)")
}

// unavailable skips t for why, or fails it where .ci/run set
// HASVC_REQUIRE_CLIENTS=1: CI installs every tool and runs as root, so
// there a missing one is a broken setup, not a test to skip.
func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("HASVC_REQUIRE_CLIENTS") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// clientEnv is the environment that points libpq-style clients at db.
func (n *node) clientEnv(db string) []string { return n.pgServer().env(db) }

// runClient runs a client program against db and returns its combined
// output.
func (n *node) runClient(db string, name string, args ...string) (string, error) {
	return n.pgServer().run(db, name, args...)
}

// TestPGClientPsql runs psql_check.sql against hasvc and PostgreSQL and
// checks the same output from both, but for two things hasvc does
// differently on purpose: a REAL column's values are SQLite's 8-byte
// floats, so its result columns are double precision, and the public
// schema belongs to the user (PostgreSQL 15: pg_database_owner).
func TestPGClientPsql(t *testing.T) {
	psql := needTool(t, "psql")
	onBothServers(t, func(t *testing.T, s pgServer) {
		s.createDB(t, "shop")
		out, err := s.run("shop", psql, "-X", "-v", "ON_ERROR_STOP=1", "-f", filepath.Join(clientsDir, "psql_check.sql"))
		if err != nil {
			t.Fatalf("psql -f: %v\n%s", err, out)
		}
		gdesc := " Column |       Type       \n--------+------------------\n id     | integer\n name   | text\n price  | double precision\n(3 rows)"
		schemaOwner := "tester"
		if s.name == "postgresql" {
			gdesc = " Column |  Type   \n--------+---------\n id     | integer\n name   | text\n price  | real\n(3 rows)"
			schemaOwner = "pg_database_owner"
		}
		for _, want := range []string{
			// the rows, with the transaction committed and the other rolled back
			"  1 | apple |     1\n  2 | pear  |  0.75\n  3 | plum  |  1.25\n(3 rows)",
			" n | total \n---+-------\n 3 |     3\n(1 row)",
			// \gdesc
			gdesc,
			// \dt
			"List of relations\n Schema | Name  | Type  | Owner  \n--------+-------+-------+--------\n public | items | table | tester\n(1 row)",
			// \d items
			`Table "public.items"`,
			" id     | integer |           | not null | ",
			" name   | text    |           | not null | ",
			" price  | real    |           |          | ",
			`"items_pkey" PRIMARY KEY, btree (id)`,
			`"items_price" btree (price)`,
			`"items_tag_key" UNIQUE CONSTRAINT, btree (tag)`,
			// \dn
			" public | " + schemaOwner,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("psql output lacks %q\n%s", want, out)
			}
		}
		// \l (PostgreSQL lists more databases, so its columns are wider)
		if !regexp.MustCompile(`\n shop +\| tester +\| UTF8 `).MatchString(out) {
			t.Errorf("\\l does not list shop:\n%s", out)
		}
	})
}

// TestPGClientPsqlErrors: psql's exit status and error output, and how it
// prints NULL and SQLite's functions.
func TestPGClientPsqlErrors(t *testing.T) {
	psql := needTool(t, "psql")
	n := startNode(t, t.TempDir(), nil)
	n.createDB("shop")
	if out, err := n.runClient("shop", psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)", "-c", "INSERT INTO items VALUES (1, 'apple')"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// ON_ERROR_STOP stops at the first error with exit status 3 and the
	// error's text.
	out, err := n.runClient("shop", psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", "INSERT INTO items (id, name) VALUES (1, 'dup')", "-c", "SELECT 1")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 && ee.ExitCode() != 1 {
		t.Fatalf("duplicate insert: %v\n%s", err, out)
	}
	if !strings.Contains(out, "UNIQUE constraint failed") {
		t.Errorf("psql error output: %s", out)
	}
	// A NULL prints empty, not "<nil>"; a transaction across -c commands.
	out, err = n.runClient("shop", psql, "-X", "-A", "-t", "-c", "SELECT 'x' || coalesce(NULL, '') || 'y', NULL IS NULL, typeof(NULL)")
	if err != nil || strings.TrimSpace(out) != "xy|1|null" {
		t.Errorf("NULL handling: %q %v", out, err)
	}
}

func TestPGClientPgbench(t *testing.T) {
	psql := needTool(t, "psql")
	pgbench := needTool(t, "pgbench")
	n := startNode(t, t.TempDir(), nil)
	n.createDB("bench")
	setup := `CREATE TABLE bench_accounts (aid INTEGER PRIMARY KEY, abalance INTEGER NOT NULL);
CREATE TABLE bench_history (id INTEGER PRIMARY KEY AUTOINCREMENT, aid INTEGER, delta INTEGER);
INSERT INTO bench_accounts WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000) SELECT i, 0 FROM s;`
	if out, err := n.runClient("bench", psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", setup); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	writes := 0
	for _, mode := range []string{"simple", "extended", "prepared"} {
		for _, script := range []string{"pgbench_select.sql", "pgbench_write.sql"} {
			out, err := n.runClient("bench", pgbench, "-n", "-c", "4", "-j", "2", "-t", "100", "-M", mode, "--max-tries=20",
				"-f", filepath.Join(clientsDir, script))
			if err != nil {
				t.Fatalf("pgbench %s %s: %v\n%s", mode, script, err, out)
			}
			p, f := processed.FindStringSubmatch(out), failed.FindStringSubmatch(out)
			if p == nil || p[1] != "400" || f == nil || f[1] != "0" {
				t.Fatalf("pgbench %s %s:\n%s", mode, script, out)
			}
			if script == "pgbench_write.sql" {
				writes += 400
			}
		}
	}
	// Every committed transaction did both of its writes, once.
	out, err := n.runClient("bench", psql, "-X", "-A", "-t", "-c", "SELECT (SELECT sum(abalance) FROM bench_accounts) || ' ' || (SELECT count(*) FROM bench_history)")
	if err != nil || strings.TrimSpace(out) != fmt.Sprintf("%d %d", writes, writes) {
		t.Fatalf("after %d write transactions: %q %v", writes, out, err)
	}
}

func TestPGClientPsycopg(t *testing.T) {
	// Debian's psycopg packages belong to the system Python.
	python := "/usr/bin/python3"
	needFile(t, python)
	onBothServers(t, func(t *testing.T, s pgServer) {
		for _, v := range []string{"2", "3"} {
			t.Run("psycopg"+v, func(t *testing.T) {
				mod := map[string]string{"2": "psycopg2", "3": "psycopg"}[v]
				if out, err := exec.Command(python, "-c", "import "+mod).CombinedOutput(); err != nil {
					missingClient(t, "python module "+mod+": "+string(out))
				}
				db := "py" + v
				s.createDB(t, db)
				out, err := s.run(db, python, filepath.Join(clientsDir, "psycopg_check.py"), v)
				if err != nil || !strings.Contains(out, "ok") {
					t.Fatalf("%v\n%s", err, out)
				}
			})
		}
	})
}

// TestPGClientPgcli runs pgcli (Debian's, psycopg 3) with commands on its
// standard input: its backslash commands (pgspecial's catalog queries,
// not psql's), and the completion refresh it runs in the background on
// connecting (schemata, tables, columns, foreign keys, functions, types,
// databases), whose failures it prints as tracebacks and logs.
func TestPGClientPgcli(t *testing.T) {
	pgcli := needTool(t, "pgcli")
	onBothServers(t, func(t *testing.T, s pgServer) { checkPgcli(t, pgcli, s) })
}

func checkPgcli(t *testing.T, pgcli string, s pgServer) {
	s.createDB(t, "cli")
	c := s.connect(t, "cli")
	for _, sql := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), total REAL DEFAULT 0)`,
		`CREATE INDEX orders_customer ON orders (customer_id)`,
		`CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100`,
		`INSERT INTO customers VALUES (1, 'ada')`,
	} {
		if _, err := c.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	// At DEBUG, pgcli logs each completion query as it sends it.
	if err := os.MkdirAll(filepath.Join(home, ".config", "pgcli"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "pgcli", "config"), []byte("[main]\nlog_level = DEBUG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgcli, "--less-chatty", "cli")
	cmd.Env = append(s.env("cli"), "HOME="+home, "TERM=dumb")
	// The last query (about a second of counting) gives the completion
	// refresh time to finish before pgcli exits.
	cmd.Stdin = strings.NewReader("\\dt\n\\d orders\n\\dv\n\\di\n\\l\nSELECT name FROM customers;\n" +
		"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000000) SELECT count(*) FROM s;\n")
	outb, _ := cmd.CombinedOutput()
	out := string(outb)
	for _, want := range []string{
		"| public | customers | table |",
		"| public | orders    | table |",
		"| customer_id | integer |            |",
		"| total       | real    |  default 0 |",
		`"orders_pkey" PRIMARY KEY, btree (id)`,
		`"orders_customer" btree (customer_id)`,
		"| public | big_orders | view |",
		"| public | orders_customer | index |",
		"| ada  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pgcli output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`\| cli +\|`).MatchString(out) {
		t.Errorf("\\l does not list cli")
	}
	log, _ := os.ReadFile(filepath.Join(home, ".config", "pgcli", "log"))
	// The refresh ends with the foreign keys' and the functions' queries,
	// both logged as "Functions Query".
	if strings.Count(string(log), "Functions Query") < 2 {
		t.Errorf("the completion refresh did not finish before pgcli exited")
	}
	if strings.Contains(out, "Traceback") || strings.Contains(string(log), " ERROR ") {
		t.Errorf("pgcli reported errors\n%s\nlog:\n%s", out, log)
	}
	if t.Failed() {
		t.Logf("pgcli output:\n%s", out)
	}
}

func TestPGClientNode(t *testing.T) {
	node := needTool(t, "node")
	needFile(t, filepath.Join(clientsDir, "node", "node_modules", "pg"))
	onBothServers(t, func(t *testing.T, s pgServer) {
		s.createDB(t, "nodejs")
		out, err := s.run("nodejs", node, filepath.Join(clientsDir, "node", "check.js"))
		if err != nil || !strings.Contains(out, "node-postgres ok") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

func TestPGClientJDBC(t *testing.T) {
	java := needTool(t, "java")
	jar := "/usr/share/java/postgresql.jar"
	needFile(t, jar)
	onBothServers(t, func(t *testing.T, s pgServer) {
		s.createDB(t, "jdbc")
		out, err := s.run("jdbc", java, "-cp", jar, filepath.Join(clientsDir, "PgjdbcCheck.java"))
		if err != nil || !strings.Contains(out, "pgjdbc ok") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}
