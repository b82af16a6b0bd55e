package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chzyer/readline"

	"hasvc/internal/replica"
	"hasvc/internal/replica/sqlitefile"
)

// runReplica is `hasvc replica`: keep a local SQLite file a live copy of
// one database (package replica), until interrupted.
func runReplica(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasvc replica", flag.ContinueOnError)
	fs.SetOutput(helpOutput(args, stdout, stderr))
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hasvc replica --url http://node:8080 --db NAME --out NAME.db  (token in HA_TOKEN or --token)")
		fmt.Fprintln(fs.Output(), "Keeps OUT a live, read-only copy of database NAME: downloads it once, then applies every")
		fmt.Fprintln(fs.Output(), "committed transaction as it happens; resumes where it stopped. Open OUT read-only.")
		fs.PrintDefaults()
	}
	nodeURL := fs.String("url", or(getenv("HASVC_URL"), "http://127.0.0.1:8080"), "the node's HTTP address, or several comma-separated: the next is tried when one fails (HASVC_URL)")
	db := fs.String("db", "", "the database to follow")
	file := fs.String("out", "", "the local SQLite file (default: <db>.db)")
	token := fs.String("token", "", "a read token for the database (default: HA_TOKEN)")
	once := fs.Bool("once", false, "catch up with the database as it is now, then exit")
	minSeq := fs.Uint64("min-seq", 0, "exit once this sequence is applied (a write's answer gives its sequence)")
	if err := fs.Parse(args); err != nil {
		return helpStatus(err)
	}
	if *db == "" {
		fmt.Fprintln(stderr, "hasvc replica: --db is required")
		return 2
	}
	if *token == "" {
		*token = or(getenv("HA_TOKEN"), getenv("HASVC_TOKEN"))
	}
	if *token == "" {
		fmt.Fprintln(stderr, "hasvc replica: give a read token for the database in HA_TOKEN or --token")
		return 2
	}
	if *file == "" {
		*file = *db + ".db"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var urls []string
	for _, u := range strings.Split(*nodeURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	local := &sqlitefile.File{Path: *file}
	defer local.Close()
	r := &replica.Replica{
		URLs: urls, DB: *db, Token: *token, Target: local, Dir: filepath.Dir(*file), Once: *once, Until: *minSeq,
		Logger: slog.New(slog.NewTextHandler(stderr, nil)).With("component", "replica"),
	}
	if f, ok := stderr.(*os.File); ok && readline.IsTerminal(int(f.Fd())) {
		r.Logger = slog.New(slog.NewTextHandler(clearLine{f}, nil)).With("component", "replica")
		stopProgress := showProgress(r, f)
		defer stopProgress()
	}
	if err := r.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "hasvc replica:", err)
		return 1
	}
	return 0
}

// showProgress keeps one line on the terminal up to date with what r is
// doing (its log lines go above it), until the returned function is
// called.
func showProgress(r *replica.Replica, term io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			st := r.Status()
			line := fmt.Sprintf("%s: sequence %d, lag %.1f ms", st.State, st.Sequence, st.Lag)
			if st.Error != "" && st.State != "following" {
				line += " (" + st.Error + ")"
			}
			fmt.Fprintf(term, "\r\033[K%s", line)
			select {
			case <-done:
				fmt.Fprintln(term)
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// clearLine writes log lines over the progress line, which is drawn again
// below them.
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
