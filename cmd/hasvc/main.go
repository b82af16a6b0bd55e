// Command hasvc runs a node of hasvc, a multi-tenant, highly available
// SQLite service replicated through NATS JetStream, or (hasvc token) prints
// a scoped access token.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hasvc/internal/api"
	"hasvc/internal/auth"
	"hasvc/internal/broker"
	"hasvc/internal/engine"
	"hasvc/internal/fsutil"
	"hasvc/internal/pg"
	"hasvc/internal/registry"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(runToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		os.Exit(runKeygen(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "sql" {
		os.Exit(runSQL(os.Args[2:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "ready" {
		os.Exit(runReady(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "replica" {
		os.Exit(runReplica(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if wantsVersion(os.Args[1:]) {
		fmt.Println(versionLine())
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.Config.Parse(os.Args[1:], os.Getenv, helpOutput(os.Args[1:], os.Stdout, os.Stderr)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hasvc:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hasvc:", err)
		m.Close()
		os.Exit(1)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := m.keys.Reload(); err != nil {
				m.Logger.Error("reload keys: keeping the old ones", "err", err)
			} else {
				m.Logger.Info("keys reloaded", "file", m.Config.JWTKeys)
			}
		}
	}()
	<-ctx.Done()
	m.Logger.Info("stopping: finishing requests in flight")
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "hasvc: shutdown:", err)
		os.Exit(1)
	}
	m.Logger.Info("stopped")
}

// Main is a running node: what main wires, and what tests drive.
type Main struct {
	Config Config
	Stdout io.Writer // where the first admin token is printed
	Logger *slog.Logger
	// Now is the clock tokens are checked against (default time.Now).
	Now func() time.Time

	lock    *dirLock
	keys    *auth.Keys
	revoked *auth.Revocations
	// life ends at Close: the registry watches run in it.
	life     context.Context
	stopLife context.CancelFunc
	broker   *broker.Server
	nc       *nats.Conn
	engine   *engine.Engine
	http     *http.Server
	// requests is the parent of every HTTP request's context; Close
	// cancels it after the drain, interrupting statements still running.
	requests     context.Context
	stopRequests context.CancelFunc
	ln           net.Listener
	served       chan error
	pg           *pg.Server
	pgLn         net.Listener
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Stdout: os.Stdout}
}

// Run starts the node and returns once it serves.
func (m *Main) Run(ctx context.Context) error {
	c := &m.Config
	if m.Logger == nil {
		var level slog.Level
		_ = level.UnmarshalText([]byte(c.LogLevel))
		var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
		if c.LogFormat == "json" {
			h = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
		}
		m.Logger = slog.New(h).With("node", c.Name)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	lock, err := lockDataDir(c.DataDir)
	if err != nil {
		return err
	}
	m.lock = lock
	keys, created, err := auth.LoadKeys(c.DataDir, c.JWTSecret, c.JWTKeys, true)
	if err != nil {
		return err
	}
	keys.Now = m.Now
	m.keys = keys
	m.revoked = &auth.Revocations{Now: m.Now}
	keys.Revoked = m.revoked.Revoked
	m.life, m.stopLife = context.WithCancel(context.Background())
	if created {
		if err := m.printAdminToken(keys); err != nil {
			return err
		}
	}

	if c.NATSPort != 0 {
		user, pass, err := broker.Credential(c.DataDir, c.NATSUser, c.NATSPass)
		if err != nil {
			return err
		}
		bc := broker.Config{
			Name: c.Name, Host: c.Host, Port: c.NATSPort,
			StoreDir: filepath.Join(c.DataDir, "jetstream"),
			User:     user, Password: pass, Fsync: c.Fsync, Logger: m.Logger,
			Authorize: m.authorizeNATS,
		}
		if peers := c.Peers(); len(peers) > 0 {
			bc.ClusterName, bc.ClusterPort, bc.Routes = c.ClusterName, c.ClusterPort, peers
			bc.ClusterAdvertise = c.ClusterAdvertise
		}
		bc.MonitorPort = c.NATSMonitorPort
		m.broker, err = broker.Start(bc)
		if err != nil {
			return err
		}
		if m.nc, err = m.broker.Connect(c.Name); err != nil {
			return err
		}
	} else {
		if m.nc, err = broker.Dial(c.ReplicationURL, c.Name, c.NATSUser, c.NATSPass); err != nil {
			return fmt.Errorf("connect to %s: %w", c.ReplicationURL, err)
		}
	}
	// An acknowledgement that never comes (its stream leader stopped)
	// must not keep its publication pending for ever: writes stop waiting
	// after the publish timeout, and so does the client.
	pubTimeout := c.PublishTimeout
	if pubTimeout <= 0 {
		pubTimeout = engine.DefaultPublishTimeout
	}
	js, err := jetstream.New(m.nc, jetstream.WithPublishAsyncTimeout(2*pubTimeout))
	if err != nil {
		return err
	}
	reg, err := m.openRegistry(ctx, js)
	if err != nil {
		return err
	}
	m.revoked.OnRevoke(m.endSessions)
	if err := reg.WatchRevoked(m.life, m.revoked.Add); err != nil {
		return err
	}
	m.ln, err = net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		return err
	}
	advertise := advertisedHTTP(c.Advertise, m.ln.Addr(), c.TLSCert != "")
	// The databases' NATS accounts (see engine/accounts.go): the
	// embedded server has them; on an external server, the accounts of
	// databases that nodes embedding theirs made are reached as
	// user@account.
	connectAccount := func(account string) (*nats.Conn, jetstream.JetStream, error) {
		var nc *nats.Conn
		var err error
		if m.broker != nil {
			nc, err = m.broker.ConnectAccount(c.Name, account)
		} else {
			user := c.NATSUser
			if user == "" {
				user = broker.DefaultUser
			}
			nc, err = broker.Dial(c.ReplicationURL, c.Name, broker.AccountUser(user, account), c.NATSPass)
		}
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(2*pubTimeout))
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}
	m.engine = &engine.Engine{
		DataDir:        c.DataDir,
		Memory:         c.Memory,
		Node:           c.Name,
		NC:             m.nc,
		JS:             js,
		ConnectAccount: connectAccount,
		// A cluster keeps new databases in the registry's account for
		// now: with them spread over the accounts, the partition suite
		// failed in both of two runs (BENCHMARKS.md, issue 16).
		Accounts:           m.broker != nil && len(c.Peers()) == 0,
		Registry:           reg,
		Logger:             m.Logger,
		IdleTimeout:        c.IdleTimeout,
		MaxOpen:            c.MaxOpenDBs,
		PublishTimeout:     c.PublishTimeout,
		Forward:            c.ForwardWrites,
		TxIdleTimeout:      c.TxIdleTimeout,
		MaxStatementTime:   c.MaxStatementTime,
		MaxSize:            c.MaxDBSize,
		SnapshotInterval:   c.SnapshotInterval,
		RetentionSnapshots: c.RetentionSnapshots,
		RetentionAge:       retentionAge(c.RetentionAge),
		SnapshotCheck:      c.SnapshotCheck,
		Replicas:           c.StreamReplicas(),
		SyncQueued:         c.Fsync == "always",
		Advertise:          advertise,
		Version:            versionLine(),
		Now:                m.Now,
	}
	if m.broker != nil {
		b := m.broker
		m.engine.JetStreamView = func() (any, error) { return b.JetStreamInfo() }
		m.engine.StreamCount = func() int {
			if info, err := b.JetStreamInfo(); err == nil {
				return info.Streams
			}
			return 0
		}
		m.engine.ClusterSize = func() int {
			if info, err := b.JetStreamInfo(); err == nil && info.Meta != nil {
				return info.Meta.Size
			}
			return 0
		}
		if f := b.Flusher(); f != nil { // a nil *Flusher is not a nil Durability
			m.engine.Durable = f
			reg.Flush = func(stream string) error { return f.Stream("", stream) }
		}
	}
	if err := m.engine.Open(ctx); err != nil {
		return err
	}
	if c.Import != "" {
		if err := m.importFile(ctx); err != nil {
			return err
		}
	}

	if c.PGPort != 0 {
		if err := m.servePG(keys); err != nil {
			return err
		}
	}
	srv := &api.Server{DB: m.engine, Auth: keys, Revoke: m.revokeToken(reg), Consumers: m.engine, Logger: m.Logger, MaxBodyBytes: c.MaxRequestBytes, Metrics: m.metrics(),
		AllowCleartext: c.AllowCleartext,
		Issue:          keys.Issue,
		Concurrency:    tenant.NewConcurrency(c.DBConcurrency, c.TokenConcurrency, "requests")}
	m.requests, m.stopRequests = context.WithCancel(context.Background())
	m.http = &http.Server{
		Handler: srv.Handler(),
		// A client gets 10s to send its headers and a minute for its
		// body (at most --max-request-bytes); responses set their own
		// write deadlines; an idle keep-alive connection is closed
		// after a minute.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return m.requests },
	}
	m.http.RegisterOnShutdown(srv.CloseStreams)
	ln := m.ln
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.http.Serve(ln) }()
	m.Logger.Info("serving", "http", m.ln.Addr().String(), "pg", m.PGAddr(), "nats", m.NATSURL())
	return nil
}

// metrics returns the /metrics handler: the engine's per-database and
// node-wide metrics, PostgreSQL sessions, and the Go runtime's and the
// process's own.
func (m *Main) metrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.engine.Metrics(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v, c, d := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hasvc_build_info",
		Help:        "1, labelled with the binary's version, commit, build date and Go version.",
		ConstLabels: prometheus.Labels{"version": v, "commit": c, "build_date": d, "go_version": runtime.Version()},
	})
	build.Set(1)
	reg.MustRegister(build)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hasvc_pg_connections",
		Help: "PostgreSQL client sessions open on this node.",
	}, func() float64 {
		if pg := m.pg; pg != nil {
			return float64(pg.Connections())
		}
		return 0
	}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// servePG starts the PostgreSQL wire protocol server.
func (m *Main) servePG(keys *auth.Keys) error {
	c := &m.Config
	port := c.PGPort
	if port < 0 {
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("pg port: %w", err)
	}
	var tlsConfig *tls.Config
	if c.PGCert != "" {
		cert, err := tls.LoadX509KeyPair(c.PGCert, c.PGKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--pg-cert: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	m.pgLn = ln
	m.pg = &pg.Server{
		DB:             m.engine,
		Auth:           keys,
		Logger:         m.Logger,
		TLS:            tlsConfig,
		AllowCleartext: c.PGCleartext,
		MaxConns:       c.PGMaxConns,
		IdleTimeout:    c.PGIdleTimeout,
		TxIdleTimeout:  c.TxIdleTimeout,
		Concurrency:    tenant.NewConcurrency(c.DBConcurrency, c.TokenConcurrency, "connections"),
		MaxMessage:     int(c.MaxRequestBytes),
		Version:        sqlite.Version(),
		Now:            m.Now,
	}
	go func() {
		if err := m.pg.Serve(ln); err != nil {
			m.Logger.Error("pg server", "err", err)
		}
	}()
	return nil
}

// PGAddr returns the address the PostgreSQL server listens on, or "".
func (m *Main) PGAddr() string {
	if m.pgLn == nil {
		return ""
	}
	return m.pgLn.Addr().String()
}

// openRegistry opens the database registry, waiting (up to a minute) for a
// JetStream cluster to elect its leader: the nodes of a new cluster start
// at about the same time, and none can create buckets before a quorum is up.
func (m *Main) openRegistry(ctx context.Context, js jetstream.JetStream) (*registry.Registry, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var reg *registry.Registry
	err := registry.UntilReady(ctx, 5*time.Second, func(ctx context.Context) error {
		var err error
		reg, err = registry.Open(ctx, js, m.Config.StreamReplicas())
		if err != nil {
			m.Logger.Info("waiting for JetStream", "err", err)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("JetStream not ready: %w", err)
	}
	return reg, nil
}

// importFile imports the positional FILE.db as database FILE, unless a
// database of that name exists (a restart with the same arguments).
func (m *Main) importFile(ctx context.Context) error {
	name := m.Config.ImportName()
	if err := tenant.ValidateName(name); err != nil {
		return fmt.Errorf("import %s: %w", m.Config.Import, err)
	}
	if _, err := m.engine.Create(ctx, tenant.Config{Name: name}); tenant.ErrorCode(err) == tenant.ECONFLICT {
		m.Logger.Info("database exists; not importing again", "db", name, "file", m.Config.Import)
		return nil
	} else if err != nil {
		return fmt.Errorf("import %s: %w", m.Config.Import, err)
	}
	if err := m.engine.Import(ctx, name, m.Config.Import); err != nil {
		if derr := m.engine.Delete(context.Background(), name); derr != nil {
			m.Logger.Error("remove half-imported database", "db", name, "err", derr)
		}
		return fmt.Errorf("import %s: %w", m.Config.Import, err)
	}
	m.Logger.Info("imported", "db", name, "file", m.Config.Import)
	return nil
}

// printAdminToken prints a fresh admin token, once, and keeps it in
// <data-dir>/admin.token (mode 0600).
func (m *Main) printAdminToken(keys *auth.Keys) error {
	tok, err := keys.Issue(auth.Principal{Subject: "admin", Databases: []string{"*"}, Perm: auth.PermAdmin}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	path := filepath.Join(m.Config.DataDir, "admin.token")
	if err := fsutil.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "hasvc: new signing key; admin token (valid one year, also in %s):\n%s\n", path, tok)
	return nil
}

// HTTPAddr returns the address the HTTP server listens on.
func (m *Main) HTTPAddr() string { return m.ln.Addr().String() }

// NATSURL returns the embedded NATS server's client URL, or the
// replication URL.
func (m *Main) NATSURL() string {
	if m.broker != nil {
		return m.broker.ClientURL()
	}
	return m.Config.ReplicationURL
}

// Close shuts the node down in order: stop taking HTTP requests and drain
// those in flight (10s at most), close the databases (stopping their
// writers), close the NATS connection, stop the embedded server. It
// returns the first error.
func (m *Main) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if m.stopLife != nil {
		m.stopLife()
	}
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		keep(m.http.Shutdown(ctx))
		cancel()
		m.stopRequests()
		if err := <-m.served; !errors.Is(err, http.ErrServerClosed) {
			keep(err)
		}
		m.http = nil
	}
	if m.pg != nil {
		keep(m.pg.Close())
		m.pg = nil
	}
	if m.engine != nil {
		keep(m.engine.Close())
		m.engine = nil
	}
	if m.nc != nil {
		m.nc.Close()
		m.nc = nil
	}
	if m.broker != nil {
		m.broker.Shutdown()
		m.broker = nil
	}
	if m.lock != nil {
		keep(m.lock.release())
		m.lock = nil
	}
	return first
}

// retentionAge is the engine's spelling of --retention-age: 0 (keep every
// snapshot) is negative there, where 0 means the default.
func retentionAge(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// advertisedHTTP is the URL GET /cluster lists for this node: --advertise
// (given a scheme if it has none), or the listen address, where a node
// listening on every interface names this machine's first address that
// is not loopback.
func advertisedHTTP(advertise string, ln net.Addr, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	if advertise != "" {
		if strings.Contains(advertise, "://") {
			return advertise
		}
		return scheme + advertise
	}
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return scheme + ln.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = machineAddress()
	}
	return scheme + net.JoinHostPort(host, port)
}

// machineAddress is this machine's first global unicast address (IPv4
// before IPv6), or 127.0.0.1 if it has none.
func machineAddress() string {
	addrs, _ := net.InterfaceAddrs()
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}
