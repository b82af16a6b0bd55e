package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"hasvc/internal/fsutil"
	"hasvc/internal/sqlite"
)

// runSQL implements "hasvc sql": a shell over the HTTP API, like the
// sqlite3 shell and psql. On a terminal it edits lines and keeps a
// history; otherwise it reads statements from stdin and stops at the
// first error with exit status 1.
func runSQL(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasvc sql", flag.ContinueOnError)
	fs.SetOutput(helpOutput(args, stdout, stderr))
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hasvc sql [flags] DATABASE\n\nflags:")
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nType .help in the shell for its commands.")
	}
	base := fs.String("url", or(getenv("HA_URL"), "http://127.0.0.1:8080"), "the node's HTTP address (HA_URL)")
	token := fs.String("token", "", "token (default: HA_TOKEN, or --token-file)")
	tokenFile := fs.String("token-file", getenv("HA_TOKEN_FILE"), "file holding the token (HA_TOKEN_FILE)")
	mode := fs.String("mode", "table", "output mode: table, csv, json or line")
	if err := fs.Parse(args); err != nil {
		return helpStatus(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	tok, err := sqlToken(*token, getenv, *tokenFile)
	if err != nil {
		fmt.Fprintln(stderr, "hasvc sql:", err)
		return 2
	}
	sh := &shell{
		client: &http.Client{Timeout: 10 * time.Minute},
		base:   strings.TrimSuffix(*base, "/"), token: tok, db: fs.Arg(0),
		out: stdout, errOut: stderr,
	}
	if err := sh.setMode(*mode); err != nil {
		fmt.Fprintln(stderr, "hasvc sql:", err)
		return 2
	}
	if f, ok := stdin.(*os.File); ok && readline.IsTerminal(int(f.Fd())) {
		return sh.interactive(f, getenv)
	}
	if err := sh.script(stdin, 0); err != nil {
		if !errors.Is(err, errQuit) {
			return 1
		}
	}
	return 0
}

// sqlToken is the token from the flag, HA_TOKEN, or the token file.
func sqlToken(flagValue string, getenv func(string) string, file string) (string, error) {
	if t := strings.TrimSpace(or(flagValue, getenv("HA_TOKEN"))); t != "" {
		return t, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%s is empty", file)
	}
	return "", errors.New("a token is needed: --token, HA_TOKEN or --token-file")
}

// errQuit ends the shell (.quit) without an error.
var errQuit = errors.New("quit")

// shell is one session of hasvc sql.
type shell struct {
	client *http.Client
	base   string
	token  string
	db     string
	out    io.Writer
	errOut io.Writer

	mode  string
	timer bool
	buf   string   // text typed since the last complete statement
	tx    []string // statements since BEGIN, sent at COMMIT
	inTx  bool
}

// interactive reads from a terminal with line editing and a history in
// ~/.hasvc_history.
func (sh *shell) interactive(stdin *os.File, getenv func(string) string) int {
	cfg := &readline.Config{Prompt: sh.db + "> ", Stdin: stdin, Stdout: sh.out, Stderr: sh.errOut,
		InterruptPrompt: "^C", EOFPrompt: ""}
	if home := getenv("HOME"); home != "" {
		cfg.HistoryFile = filepath.Join(home, ".hasvc_history")
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		fmt.Fprintln(sh.errOut, "hasvc sql:", err)
		return 1
	}
	defer rl.Close()
	fmt.Fprintf(sh.out, "hasvc sql: database %s at %s. Statements end with ';'. Type .help for commands.\n", sh.db, sh.base)
	for {
		if strings.TrimSpace(sh.buf) != "" || sh.inTx {
			rl.SetPrompt(strings.Repeat(" ", max(0, len(sh.db)-3)) + "...> ")
		} else {
			rl.SetPrompt(sh.db + "> ")
		}
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			sh.buf = "" // Ctrl+C drops what was typed
			continue
		}
		if err != nil { // Ctrl+D
			break
		}
		if err := sh.line(line, 0); errors.Is(err, errQuit) {
			break
		}
	}
	if sh.inTx {
		fmt.Fprintf(sh.errOut, "the transaction was not committed: %d statements dropped\n", len(sh.tx))
	}
	return 0
}

// script runs statements and commands read from r, stopping at the first
// error (which it has printed).
func (sh *shell) script(r io.Reader, depth int) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if lerr := sh.line(strings.TrimSuffix(line, "\n"), depth); lerr != nil {
				return lerr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(sh.errOut, "Error:", err)
			return err
		}
	}
	if depth > 0 {
		return nil
	}
	if strings.TrimSpace(sh.buf) != "" && !sqlite.Complete(sh.buf) {
		err := fmt.Errorf("incomplete statement at the end of the input (missing ';'?): %s", firstLine(sh.buf))
		fmt.Fprintln(sh.errOut, "Error:", err)
		return err
	}
	if sh.inTx {
		err := fmt.Errorf("the input ended inside a transaction: %d statements not committed", len(sh.tx))
		fmt.Fprintln(sh.errOut, "Error:", err)
		return err
	}
	return nil
}

// line takes one line of input: a dot command, or SQL that runs once it
// completes a statement.
func (sh *shell) line(line string, depth int) error {
	if strings.TrimSpace(sh.buf) == "" && strings.HasPrefix(strings.TrimSpace(line), ".") {
		sh.buf = ""
		err := sh.command(strings.TrimSpace(line), depth)
		var printed errPrinted
		if err != nil && !errors.Is(err, errQuit) && !errors.As(err, &printed) {
			fmt.Fprintln(sh.errOut, "Error:", err)
		}
		return err
	}
	sh.buf += line + "\n"
	stmts, rest := sqlite.SplitComplete(sh.buf)
	sh.buf = rest
	if strings.TrimSpace(rest) == "" {
		sh.buf = ""
	}
	for _, s := range stmts {
		if err := sh.statement(s); err != nil {
			fmt.Fprintln(sh.errOut, "Error:", err)
			sh.buf = ""
			return err
		}
	}
	return nil
}

// statement runs one statement, or keeps it for COMMIT inside a
// transaction. BEGIN, COMMIT and ROLLBACK are the shell's: a request is
// one transaction on the node, so the statements between BEGIN and
// COMMIT go as one request (their results print at COMMIT).
func (sh *shell) statement(s string) error {
	switch kw := sqlite.LeadingWords(s, 2); {
	case kw[0] == "BEGIN":
		if sh.inTx {
			return errors.New("a transaction is already open")
		}
		sh.inTx, sh.tx = true, nil
		return nil
	case kw[0] == "COMMIT" || kw[0] == "END":
		if !sh.inTx {
			return errors.New("no transaction is open")
		}
		stmts := sh.tx
		sh.inTx, sh.tx = false, nil
		if len(stmts) == 0 {
			return nil
		}
		return sh.run(stmts)
	case kw[0] == "ROLLBACK" && kw[1] != "TO":
		if !sh.inTx {
			return errors.New("no transaction is open")
		}
		sh.inTx, sh.tx = false, nil
		return nil
	case kw[0] == "SAVEPOINT" || kw[0] == "RELEASE" || kw[0] == "ROLLBACK":
		return errors.New("savepoints are not supported by hasvc sql (a request is one transaction)")
	}
	if sh.inTx {
		sh.tx = append(sh.tx, s)
		return nil
	}
	return sh.run([]string{s})
}

// result is one statement's result as the API returns it.
type result struct {
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// apiError is the API's error body.
type apiError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Statement *int   `json:"statement"`
}

// run sends statements as one request and prints their results.
func (sh *shell) run(stmts []string) error {
	body := make([]map[string]string, len(stmts))
	for i, s := range stmts {
		body[i] = map[string]string{"sql": s}
	}
	start := time.Now()
	var res struct {
		Results  []result    `json:"results"`
		Sequence json.Number `json:"sequence"`
	}
	if err := sh.call(http.MethodPost, "/db/"+url.PathEscape(sh.db), body, &res, stmts); err != nil {
		return err
	}
	elapsed := time.Since(start)
	for i, r := range res.Results {
		if i < len(stmts) && isWriteResult(stmts[i], r) {
			continue
		}
		sh.print(r)
	}
	if sh.timer {
		seq := ""
		if res.Sequence != "" {
			seq = ", sequence " + res.Sequence.String()
		}
		fmt.Fprintf(sh.out, "Run Time: %.3f ms%s\n", float64(elapsed.Microseconds())/1000, seq)
	}
	return nil
}

// call sends one request to the API and decodes its JSON answer into
// out, or returns its error (naming the failed statement of stmts).
func (sh *shell) call(method, path string, in, out any, stmts []string) error {
	resp, err := sh.request(method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error apiError `json:"error"`
		}
		if err := dec.Decode(&e); err != nil || e.Error.Code == "" {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		msg := fmt.Sprintf("%s (%s)", e.Error.Message, e.Error.Code)
		if e.Error.Statement != nil && len(stmts) > 1 && *e.Error.Statement < len(stmts) {
			msg += fmt.Sprintf("\n  in statement %d: %s", *e.Error.Statement+1, firstLine(stmts[*e.Error.Statement]))
		}
		return errors.New(msg)
	}
	return dec.Decode(out)
}

func (sh *shell) request(method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, sh.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+sh.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return sh.client.Do(req)
}

// isWriteResult reports whether r is the rows_affected/last_insert_id of
// a statement that returns no rows of its own; the shell prints none, as
// the sqlite3 shell does.
func isWriteResult(stmt string, r result) bool {
	if len(r.Columns) != 2 || r.Columns[0] != "rows_affected" || r.Columns[1] != "last_insert_id" {
		return false
	}
	switch sqlite.LeadingWords(stmt, 1)[0] {
	case "SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN":
		return false
	}
	return !strings.Contains(strings.ToUpper(stmt), "RETURNING")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

const shellHelp = `.backup FILE       save a consistent copy of the database as a SQLite file
.help              this text
.mode [MODE]       show or set the output mode: table, csv, json or line
.quit, .exit       leave the shell
.read FILE         run the statements and commands in FILE
.schema [TABLE]    the CREATE statements of the database (or of TABLE and its indexes and triggers)
.tables            the tables and views
.timer on|off      print each request's time (and the sequence of a write)

Statements end with ';'. Each runs as its own transaction; statements
between BEGIN and COMMIT are sent together at COMMIT, as one.
`

// command runs a dot command.
func (sh *shell) command(line string, depth int) error {
	f := strings.Fields(line)
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	switch f[0] {
	case ".quit", ".exit", ".q":
		return errQuit
	case ".help":
		fmt.Fprint(sh.out, shellHelp)
	case ".mode":
		if len(f) == 1 {
			fmt.Fprintln(sh.out, "current output mode:", sh.mode)
			return nil
		}
		return sh.setMode(f[1])
	case ".timer":
		switch arg(1) {
		case "on":
			sh.timer = true
		case "off":
			sh.timer = false
		default:
			return errors.New("usage: .timer on|off")
		}
	case ".tables":
		var res struct{ Results []result }
		err := sh.call(http.MethodPost, "/db/"+url.PathEscape(sh.db), []map[string]string{{"sql": `SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc\_%' ESCAPE '\' ORDER BY name`}}, &res, nil)
		if err != nil {
			return err
		}
		var names []string
		for _, r := range res.Results[0].Rows {
			names = append(names, fmt.Sprint(r[0]))
		}
		if len(names) > 0 {
			fmt.Fprintln(sh.out, strings.Join(names, "  "))
		}
	case ".schema":
		q := map[string]any{"sql": `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_hasvc\_%' ESCAPE '\' AND (?1 = '' OR tbl_name = ?1) ORDER BY tbl_name, CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, name`,
			"params": []any{arg(1)}}
		var res struct{ Results []result }
		if err := sh.call(http.MethodPost, "/db/"+url.PathEscape(sh.db), []any{q}, &res, nil); err != nil {
			return err
		}
		for _, r := range res.Results[0].Rows {
			fmt.Fprintf(sh.out, "%s;\n", r[0])
		}
	case ".backup", ".save":
		file := arg(1)
		if len(f) == 3 && f[1] == "main" {
			file = f[2]
		}
		if file == "" || len(f) > 3 {
			return errors.New("usage: .backup FILE")
		}
		return sh.backup(file)
	case ".read":
		if arg(1) == "" {
			return errors.New("usage: .read FILE")
		}
		if depth >= 16 {
			return errors.New(".read nested too deeply")
		}
		file, err := os.Open(arg(1))
		if err != nil {
			return err
		}
		defer file.Close()
		if err := sh.script(file, depth+1); err != nil {
			// Already printed where it happened.
			if errors.Is(err, errQuit) {
				return err
			}
			return errPrinted{err}
		}
	default:
		return fmt.Errorf("unknown command %s: type .help for the commands", f[0])
	}
	return nil
}

// errPrinted is an error already shown to the user.
type errPrinted struct{ error }

// backup saves the database's backup as file, whole or not at all.
func (sh *shell) backup(file string) error {
	resp, err := sh.request(http.MethodGet, "/db/"+url.PathEscape(sh.db)+"/backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error apiError `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("backup: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return fsutil.WriteFile(file, data, 0o644)
}
