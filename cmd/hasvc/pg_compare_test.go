package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The checks of PostgreSQL's own behaviour run twice: against a hasvc node
// and against a real PostgreSQL server on the same machine (Debian's
// postgresql package, which .ci/run installs), so a check that passes
// only against hasvc is a check of the wrong behaviour. Where hasvc
// differs on purpose (SQLite's types, tokens), the check says so.

// pgServer is a server the shared checks connect to.
type pgServer struct {
	name       string // "hasvc" or "postgresql"
	host, port string
	user, pass string
	createDB   func(t *testing.T, db string)
}

func (s pgServer) dsn(db string) string {
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable", s.host, s.port, s.user, s.pass, db)
}

// env is the environment that points libpq-style clients at db.
func (s pgServer) env(db string) []string {
	return append(os.Environ(), "PGHOST="+s.host, "PGPORT="+s.port, "PGDATABASE="+db,
		"PGUSER="+s.user, "PGPASSWORD="+s.pass, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

func (s pgServer) connect(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// run runs a client program against db and returns its combined output.
func (s pgServer) run(db, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = s.env(db)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pgServer is n as a server the client checks connect to.
func (n *node) pgServer() pgServer {
	host, port, _ := net.SplitHostPort(n.m.PGAddr())
	return pgServer{name: "hasvc", host: host, port: port, user: "tester", pass: n.admin,
		createDB: func(t *testing.T, db string) { n.createDB(db) }}
}

// onBothServers runs check as subtest "hasvc", against a new node, and
// as subtest "postgresql", against the shared PostgreSQL server.
func onBothServers(t *testing.T, check func(t *testing.T, s pgServer)) {
	t.Run("hasvc", func(t *testing.T) {
		check(t, startNode(t, t.TempDir(), nil).pgServer())
	})
	t.Run("postgresql", func(t *testing.T) {
		check(t, postgresServer(t))
	})
}

var postgres struct {
	once sync.Once
	srv  pgServer
	err  error
	stop func()
}

// postgresServer returns the PostgreSQL server the shared checks compare
// against, started on first use (initdb in a temporary directory, trust
// authentication, loopback only, as the postgres user when the tests run
// as root) and stopped by TestMain.
func postgresServer(t *testing.T) pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		missingClient(t, "PostgreSQL's server (Debian package postgresql)")
	}
	postgres.once.Do(func() { postgres.srv, postgres.stop, postgres.err = startPostgres(filepath.Dir(bins[len(bins)-1])) })
	if postgres.err != nil {
		t.Fatalf("start PostgreSQL: %v", postgres.err)
	}
	return postgres.srv
}

func startPostgres(bin string) (pgServer, func(), error) {
	dir, err := os.MkdirTemp("", "hasvc-postgres-")
	if err != nil {
		return pgServer{}, nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return pgServer{}, nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return pgServer{}, nil, err
		}
	}
	pg := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	fail := func(err error) (pgServer, func(), error) {
		os.RemoveAll(dir)
		return pgServer{}, nil, err
	}
	data := filepath.Join(dir, "data")
	// The superuser is called tester, as the node's pgwire user in
	// these tests, so that owners print the same.
	if err := pg("initdb", "-D", data, "-A", "trust", "-U", "tester", "-E", "UTF8", "--locale", "C"); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if err := pg("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		return fail(err)
	}
	stop := func() {
		pg("pg_ctl", "-D", data, "-m", "immediate", "stop")
		os.RemoveAll(dir)
	}
	srv := pgServer{name: "postgresql", host: "127.0.0.1", port: port, user: "tester", pass: "unused"}
	srv.createDB = func(t *testing.T, db string) {
		t.Helper()
		c := srv.connect(t, "postgres")
		for _, sql := range []string{`DROP DATABASE IF EXISTS "` + db + `"`, `CREATE DATABASE "` + db + `"`} {
			if _, err := c.Exec(context.Background(), sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
	}
	return srv, stop, nil
}

// stopPostgres stops the shared PostgreSQL server, if one was started.
func stopPostgres() {
	if postgres.stop != nil {
		postgres.stop()
	}
}

// TestPGSameAsPostgres checks, against both servers, what issue-by-issue
// fixes made hasvc do as PostgreSQL does: bytea literals from clients that
// interpolate parameters, DateStyle, SERIAL and identity keys, everyday
// functions, information_schema and pg_tables, \gdesc and psql -l.
func TestPGSameAsPostgres(t *testing.T) {
	onBothServers(t, func(t *testing.T, s pgServer) {
		ctx := context.Background()
		s.createDB(t, "same")
		c := s.connect(t, "same")

		// A client that puts values into the SQL text (pgx's simple
		// protocol, PgBouncer's transaction mode) sends bytea as a '\x…'
		// literal; the column gets the bytes.
		pgExecAll(t, c, `CREATE TABLE f (id INTEGER PRIMARY KEY, data BYTEA, note TEXT)`)
		want := []byte{0, 0xff, 0x10, '\\', 'x', '\''}
		if _, err := c.Exec(ctx, `INSERT INTO f (id, data, note) VALUES ($1, $2, $3)`, pgx.QueryExecModeSimpleProtocol, 1, want, `\x41 stays text`); err != nil {
			t.Fatal(err)
		}
		var got []byte
		var note string
		if err := c.QueryRow(ctx, `SELECT data, note FROM f WHERE id = 1`).Scan(&got, &note); err != nil || !bytes.Equal(got, want) || note != `\x41 stays text` {
			t.Errorf("bytea %x, note %q, %v", got, note, err)
		}
		var ds string
		if err := c.QueryRow(ctx, `SHOW DateStyle`).Scan(&ds); err != nil || ds != "ISO, MDY" || c.PgConn().ParameterStatus("DateStyle") != "ISO, MDY" {
			t.Errorf("DateStyle %q / %q (%v)", ds, c.PgConn().ParameterStatus("DateStyle"), err)
		}

		// Auto-assigned keys.
		for _, sql := range []string{
			`CREATE TABLE s1 (id SERIAL PRIMARY KEY, name TEXT)`,
			`CREATE TABLE s2 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT)`,
			`CREATE TABLE s3 (id BIGSERIAL, name TEXT, CONSTRAINT s3_pk PRIMARY KEY (id))`,
			`CREATE TABLE s4 (id integer GENERATED BY DEFAULT AS IDENTITY (START WITH 1 INCREMENT BY 1) PRIMARY KEY, name TEXT)`,
		} {
			pgExecAll(t, c, sql)
			table := strings.Fields(sql)[2]
			if ids := pgRows(t, c, fmt.Sprint, `INSERT INTO `+table+` (name) VALUES ('a'), ('b') RETURNING id`); ids != "1; 2" {
				t.Errorf("%s: ids %s", table, ids)
			}
		}

		// now() and gen_random_uuid(), named as PostgreSQL names them.
		// hasvc's now() has millisecond precision, PostgreSQL's
		// microsecond.
		var now, uuid string
		if err := c.QueryRow(ctx, `SELECT now()::text, gen_random_uuid()::text`).Scan(&now, &uuid); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+00$`).MatchString(now) ||
			!regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(uuid) {
			t.Errorf("now() %q, gen_random_uuid() %q", now, uuid)
		}
		if names := func() string {
			r, err := c.Query(ctx, `SELECT now(), pg_catalog.gen_random_uuid(), current_timestamp`)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var n []string
			for _, fd := range r.FieldDescriptions() {
				n = append(n, fd.Name)
			}
			return strings.Join(n, ",")
		}(); names != "now,gen_random_uuid,current_timestamp" {
			t.Errorf("column names %s", names)
		}

		// The catalog GUI tools and ORMs browse.
		pgExecAll(t, c,
			`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION DEFAULT 0)`,
			`CREATE INDEX users_name ON users (name)`,
			`CREATE VIEW names AS SELECT name FROM users`)
		if got := pgRows(t, c, fmt.Sprint, `SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('users', 'names') ORDER BY table_name`); got != "namesVIEW; usersBASE TABLE" {
			t.Errorf("information_schema.tables: %s", got)
		}
		if got := pgRows(t, c, fmt.Sprint, `SELECT column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, "users"); got != "idintegerNO1; nametextNO2; scoredouble precisionYES3" {
			t.Errorf("information_schema.columns: %s", got)
		}
		if got := pgRows(t, c, fmt.Sprint, `SELECT tablename, hasindexes FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = 'users'`, pgx.QueryExecModeSimpleProtocol); got != "userstrue" {
			t.Errorf("pg_tables: %s", got)
		}

		if psql, err := exec.LookPath("psql"); err == nil {
			gdesc := filepath.Join(t.TempDir(), "gdesc.sql")
			os.WriteFile(gdesc, []byte(`SELECT id, name, score FROM users \gdesc`+"\n"), 0o644)
			out, err := s.run("same", psql, "-X", "-f", gdesc)
			if err != nil || !strings.Contains(out, " id     | integer\n name   | text\n score  | double precision\n(3 rows)") {
				t.Errorf("\\gdesc: %v\n%s", err, out)
			}
			out, err = s.run("postgres", psql, "-X", "-l", "-A", "-t")
			if err != nil || !strings.Contains(out, "same|tester|UTF8|") {
				t.Errorf("psql -l: %v\n%s", err, out)
			}
		}
	})
}
