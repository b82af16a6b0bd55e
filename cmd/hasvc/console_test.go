package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console is tested in a real browser: headless Chromium, driven over
// the DevTools protocol. Each step saves a screenshot (PNG) in
// screenshots/console (git ignores it; HASVC_SCREENSHOTS names another
// folder) for a person to look at after a run.

// browser starts headless Chromium for a test, or skips (fails when
// clients are required) if it is not installed.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		missingClient(t, "chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// screenshots is where the console's screenshots go.
func screenshots(t *testing.T) string {
	dir := os.Getenv("HASVC_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "screenshots", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// page runs browser actions and saves a screenshot named shot (if not
// empty) after them.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (p *page) run(shot string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	err := chromedp.Do(p.ctx, actions...)
	if err == nil && shot != "" {
		var png []byte
		if err = chromedp.Do(p.ctx, chromedp.Sleep(150*time.Millisecond)); err == nil {
			png, err = chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(p.dir, shot+".png"), png, 0o644)
		}
	}
	if err != nil {
		html, _ := chromedp.Run(p.ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		p.t.Fatalf("%s: %v\npage: %.3000s", shot, err, html)
	}
}

// get runs one browser action that returns a value.
func get[T any](p *page, a chromedp.Action[T]) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, a)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// cells returns the class and text of every cell of a results table.
func (p *page) cells(table string) []string {
	p.t.Helper()
	return get(p, chromedp.Evaluate[[]string](`[...document.querySelectorAll(`+"`"+table+" td`"+`)].map(td => td.className + '|' + td.textContent)`))
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return get(p, chromedp.Text(chromedp.CSS(sel)))
}

func TestConsole(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	p := &page{t: t, ctx: browser(t, 1280, 900), dir: screenshots(t)}

	// / sends the browser to the console, which asks for a token.
	p.run("01-sign-in", chromedp.Navigate(n.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	loc := get(p, chromedp.Location())
	if !strings.HasSuffix(loc, "/ui/") {
		t.Errorf("/ went to %s, want the console at /ui/", loc)
	}
	// A wrong token is refused on the sign-in page.
	p.run("", chromedp.SetValue(chromedp.ID("token"), "not-a-token"), chromedp.Click(chromedp.CSS("#login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#login .error")))
	if got := p.text("#login .error"); !strings.Contains(got, "EUNAUTHORIZED") {
		t.Errorf("bad token: %q", got)
	}
	p.run("02-databases", chromedp.SetValue(chromedp.ID("token"), n.admin), chromedp.Click(chromedp.CSS("#login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("databases")))
	// The token stays in session storage, never in the URL.
	loc = get(p, chromedp.Location())
	if strings.Contains(loc, n.admin) {
		t.Errorf("token in the URL: %s", loc)
	}

	// Create a database; the console opens its SQL editor.
	p.run("", chromedp.SendKeys(chromedp.CSS("#create input[name=name]"), "shop"), chromedp.Click(chromedp.CSS("#create button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("sql")))
	if out := n.ok("GET", "/databases/shop", ""); !strings.Contains(out, `"name":"shop"`) {
		t.Fatalf("database not created: %s", out)
	}

	// Several statements, one transaction; the grid shows each value's type.
	script := `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB, note TEXT);
INSERT INTO items VALUES (1, 'pen; blue', 1.5, x'00ff', NULL), (2, '', 2.0, NULL, 'it''s');
-- a comment; with a semicolon
SELECT * FROM items ORDER BY id;`
	p.run("03-sql-results", chromedp.SetValue(chromedp.ID("sql"), script), chromedp.Click(chromedp.ID("run")),
		chromedp.WaitVisible(chromedp.ID("summary")))
	if got := p.text("#summary"); !strings.Contains(got, "3 statements") || !strings.Contains(got, "committed at sequence 1") {
		t.Errorf("summary: %q", got)
	}
	want := []string{
		"num int|1", "|pen; blue", "num real|1.5", "blob|x'00ff'", "null|NULL",
		"num int|2", "empty|", "num real|2.0", "null|NULL", "|it's",
	}
	if got := p.cells(".result:nth-of-type(3) table"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("result grid:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Bad SQL: the error names the failing statement; nothing commits.
	p.run("04-sql-error", chromedp.SetValue(chromedp.ID("sql"), "INSERT INTO items(name) VALUES ('x');\nSELECT * FROM nope;"),
		chromedp.Click(chromedp.ID("run")), chromedp.WaitVisible(chromedp.ID("failed-statement")))
	if got := p.text("#results .error"); !strings.Contains(got, "EINVALID") || !strings.Contains(got, "no such table: nope") {
		t.Errorf("error: %q", got)
	}
	if got := p.text("#failed-statement"); got != "SELECT * FROM nope;" {
		t.Errorf("failed statement: %q", got)
	}
	if out := n.ok("POST", "/db/shop", `{"sql":"SELECT count(*) FROM items"}`); !strings.Contains(out, `[[2]]`) {
		t.Errorf("the failed request committed: %s", out)
	}
	if got := p.text("#history"); !strings.Contains(got, "SELECT * FROM nope") || !strings.Contains(got, "CREATE TABLE items") {
		t.Errorf("history: %q", got)
	}

	// The table browser: columns, indexes, a row count and pages of rows.
	n.ok("POST", "/db/shop", `{"sql":"WITH RECURSIVE c(i) AS (SELECT 3 UNION ALL SELECT i+1 FROM c WHERE i < 120) INSERT INTO items(id, name) SELECT i, 'item ' || i FROM c; CREATE INDEX items_name ON items(name)"}`)
	p.run("05-table-browser", chromedp.Navigate(n.url+"/ui/#/db/shop/tables/items"), chromedp.WaitVisible(chromedp.ID("page")))
	if got := p.text("#page"); got != "rows 1–50 of 120" {
		t.Errorf("page: %q", got)
	}
	if got := p.text("#table-view"); !strings.Contains(got, "items_name") || !strings.Contains(got, "REAL") {
		t.Errorf("table view lacks the index or the column types: %.300q", got)
	}
	p.run("", chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(`//span[@id="page"][text()="rows 51–100 of 120"]`))

	// Snapshots: take one, see it listed.
	p.run("06-snapshots", chromedp.Navigate(n.url+"/ui/#/db/shop/snapshots"), chromedp.WaitVisible(chromedp.ID("take-snapshot")),
		chromedp.Click(chromedp.ID("take-snapshot")), chromedp.WaitVisible(chromedp.CSS("#snapshots tbody td.num")))
	if got := p.text("#snapshots tbody td.num"); got != "2" {
		t.Errorf("snapshot sequence: %q, want 2", got)
	}

	// The live change feed shows a write made elsewhere.
	p.run("", chromedp.Navigate(n.url+"/ui/#/db/shop/changes"), chromedp.WaitVisible(chromedp.ID("feed-toggle")),
		chromedp.Click(chromedp.ID("feed-toggle")), chromedp.WaitVisible(`//span[@id="feed-state"][text()="live"]`))
	n.ok("POST", "/db/shop", `{"sql":"INSERT INTO items(name) VALUES ('from the API')"}`)
	p.run("07-change-feed", chromedp.WaitVisible(chromedp.CSS("#feed div")))
	if got := p.text("#feed"); !strings.Contains(got, "#3") || !strings.Contains(got, "INSERT items") {
		t.Errorf("feed: %q", got)
	}

	p.run("08-status", chromedp.Navigate(n.url+"/ui/#/db/shop/info"), chromedp.WaitVisible(chromedp.CSS("#copies td")))
	if got := p.text("#copies"); !strings.Contains(got, "n1") || !strings.Contains(got, "ok") {
		t.Errorf("copies: %q", got)
	}
	p.run("09-cluster", chromedp.Navigate(n.url+"/ui/#/cluster"), chromedp.WaitVisible(chromedp.CSS("#lag td")))

	// Mint a read token for shop; it works against the API.
	p.run("", chromedp.Navigate(n.url+"/ui/#/tokens"), chromedp.WaitVisible(chromedp.ID("mint")),
		chromedp.SendKeys(chromedp.CSS("#mint input[name=databases]"), "shop"), chromedp.Click(chromedp.CSS("#mint button[type=submit]")))
	p.run("10-tokens", chromedp.WaitVisible(chromedp.CSS("#minted textarea")))
	minted := get(p, chromedp.Value(chromedp.CSS("#minted textarea")))
	if status, out := n.do("POST", "/db/shop", minted, `{"sql":"SELECT count(*) FROM items"}`); status != 200 || !strings.Contains(out, "[[121]]") {
		t.Errorf("minted token read: %d %s", status, out)
	}
	if status, _ := n.do("POST", "/db/shop", minted, `{"sql":"DELETE FROM items"}`); status != 403 {
		t.Errorf("minted read token wrote: %d", status)
	}

	// Delete the database: the button stays off until the name is typed.
	p.run("", chromedp.Navigate(n.url+"/ui/#/"), chromedp.WaitVisible(chromedp.CSS(`#databases tr[data-name="shop"] button`)),
		chromedp.Click(chromedp.CSS(`#databases tr[data-name="shop"] button`)), chromedp.WaitVisible(chromedp.CSS("#confirm-delete input")),
		chromedp.SendKeys(chromedp.CSS("#confirm-delete input"), "sho"))
	p.run("11-delete-confirm")
	disabled := get(p, chromedp.Evaluate[bool](`document.querySelector('#confirm-delete button.danger').disabled`))
	if !disabled {
		t.Error("delete enabled before the whole name was typed")
	}
	p.run("", chromedp.SendKeys(chromedp.CSS("#confirm-delete input"), "p"), chromedp.Click(chromedp.CSS("#confirm-delete button.danger")),
		chromedp.WaitNotPresent(chromedp.CSS(`#databases tr[data-name="shop"]`)), chromedp.WaitVisible(chromedp.ID("databases")))
	if status, _ := n.do("GET", "/databases/shop", n.admin, ""); status != 404 {
		t.Errorf("deleted database: %d", status)
	}
	p.run("12-deleted", chromedp.Sleep(100*time.Millisecond))
}

// TestConsolePhone looks at the console on a phone-sized screen: the SQL
// editor and its results fit the width (wide grids scroll inside their
// box, not the page).
func TestConsolePhone(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	n.createDB("notes")
	n.ok("POST", "/db/notes", `{"sql":"CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, created REAL, tags TEXT)"}`)
	p := &page{t: t, ctx: browser(t, 390, 844), dir: screenshots(t)}
	p.run("", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch), chromedp.Navigate(n.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), n.admin), chromedp.Click(chromedp.CSS("#login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("databases")))
	p.run("phone-01-databases")
	p.run("phone-02-sql", chromedp.Navigate(n.url+"/ui/#/db/notes/sql"), chromedp.WaitVisible(chromedp.ID("sql")),
		chromedp.SetValue(chromedp.ID("sql"), "INSERT INTO notes(title, body, created) VALUES ('first', 'a longer body of text that goes on', 1.25); SELECT * FROM notes"),
		chromedp.Click(chromedp.ID("run")), chromedp.WaitVisible(chromedp.ID("summary")))
	scroll := get(p, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	client := get(p, chromedp.Evaluate[int](`document.documentElement.clientWidth`))
	if scroll > client {
		t.Errorf("the page is %d px wide on a %d px screen", scroll, client)
	}
}

// TestConsoleCluster looks at a three-node cluster through one node's
// console: the nodes, JetStream's meta group with its peers, which node a
// database's writes run on, and every copy.
func TestConsoleCluster(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	nodes[0].createDB("shared")
	nodes[1].ok("POST", "/db/shared", `[{"sql": "CREATE TABLE t(x)"}, {"sql": "INSERT INTO t VALUES (1)"}]`)
	for _, n := range nodes {
		n.query("shared", "SELECT 1") // each node opens (and follows) a copy
	}
	leader := nodes[0].info("shared").StreamLeader
	p := &page{t: t, ctx: browser(t, 1280, 900), dir: screenshots(t)}
	p.run("", chromedp.Navigate(nodes[2].url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), nodes[2].admin), chromedp.Click(chromedp.CSS("#login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("databases")))
	p.run("cluster-01-nodes", chromedp.Navigate(nodes[2].url+"/ui/#/cluster"), chromedp.WaitVisible(chromedp.CSS("#peers td")))
	if got := p.text("#nodes"); !strings.Contains(got, "n1") || !strings.Contains(got, "n2") || !strings.Contains(got, "n3") {
		t.Errorf("nodes: %q", got)
	}
	if got := p.text("#peers"); !strings.Contains(got, "yes") {
		t.Errorf("JetStream peers: %q", got)
	}
	p.run("cluster-02-status", chromedp.Navigate(nodes[2].url+"/ui/#/db/shared/info"), chromedp.WaitVisible(chromedp.CSS("#copies td")))
	runsOn := get(p, chromedp.Evaluate[string](`[...document.querySelectorAll('table.kv tr')].find(tr => tr.cells[0].textContent === 'writes run on')?.cells[1].textContent || ''`))
	if runsOn != leader {
		t.Errorf("status says writes run on %q, the stream leader is %q", runsOn, leader)
	}
	if got := p.text("#copies"); strings.Count(got, "ok") != 3 {
		t.Errorf("copies: %q", got)
	}
}
