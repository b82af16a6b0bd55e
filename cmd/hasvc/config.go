package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hasvc/internal/api"
	"hasvc/internal/broker"
	"hasvc/internal/engine"
	"hasvc/internal/pg"
	"hasvc/internal/tenant"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is a node's configuration. Precedence, lowest first: defaults,
// the config file (--config, JSON with the long flag names as keys), HA_*
// environment variables, flags.
type Config struct {
	Name             string
	Host             string
	Port             int
	PGPort           int
	TLSCert          string
	TLSKey           string
	AllowCleartext   bool
	PGCert           string
	PGKey            string
	PGCleartext      bool
	PGMaxConns       int
	PGIdleTimeout    time.Duration
	TxIdleTimeout    time.Duration
	SnapshotInterval time.Duration
	// RetentionSnapshots and RetentionAge are the default retention.
	RetentionSnapshots int
	RetentionAge       time.Duration
	// SnapshotCheck is how often the node looks for scheduled snapshots
	// (tests shorten it; no flag).
	SnapshotCheck    time.Duration
	MaxStatementTime time.Duration
	MaxDBSize        int64
	DBConcurrency    int
	TokenConcurrency int
	NATSPort         int
	ReplicationURL   string
	NATSUser         string
	NATSPass         string
	Fsync            string
	ClusterPort      int
	ClusterName      string
	ClusterAdvertise string
	NATSMonitorPort  int
	Join             string // host:port of other nodes' cluster ports, comma-separated
	Replicas         int
	Advertise        string
	Memory           bool
	DataDir          string
	JWTSecret        string
	JWTKeys          string // keys file: several keys by kid, HS256 or EdDSA
	IdleTimeout      time.Duration
	MaxOpenDBs       int
	PublishTimeout   time.Duration
	ForwardWrites    bool
	MaxRequestBytes  int64
	LogLevel         string
	LogFormat        string
	ConfigFile       string
	Import           string // positional FILE.db
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "hasvc"
	}
	return Config{
		Name:               host,
		Port:               8080,
		PGPort:             5432,
		PGMaxConns:         pg.DefaultMaxConns,
		PGIdleTimeout:      pg.DefaultIdleTimeout,
		TxIdleTimeout:      engine.DefaultTxIdleTimeout,
		RetentionSnapshots: engine.DefaultRetentionSnapshots,
		RetentionAge:       engine.DefaultRetentionAge,
		MaxStatementTime:   engine.DefaultMaxStatementTime,
		MaxDBSize:          engine.DefaultMaxSize,
		DBConcurrency:      128,
		TokenConcurrency:   64,
		NATSPort:           4222,
		Fsync:              broker.DefaultFsync,
		ClusterPort:        6222,
		ClusterName:        "hasvc",
		DataDir:            "./data",
		IdleTimeout:        engine.DefaultIdleTimeout,
		PublishTimeout:     engine.DefaultPublishTimeout,
		ForwardWrites:      true,
		MaxRequestBytes:    api.DefaultMaxBodyBytes,
		LogLevel:           "info",
		LogFormat:          "text",
	}
}

// setting is one configuration knob: its flag names, environment
// variable and the Config field it sets (*string, *int, *int64, *bool or
// *time.Duration).
type setting struct {
	long, short, env, usage string
	field                   any
}

// define defines the setting's flag called name on fs, with the field's
// current value as its default.
func (s setting) define(fs *flag.FlagSet, name, usage string) {
	switch p := s.field.(type) {
	case *string:
		fs.StringVar(p, name, *p, usage)
	case *int:
		fs.IntVar(p, name, *p, usage)
	case *int64:
		fs.Int64Var(p, name, *p, usage)
	case *bool:
		fs.BoolVar(p, name, *p, usage)
	case *time.Duration:
		fs.DurationVar(p, name, *p, usage)
	default:
		panic(fmt.Sprintf("setting %s: field of type %T", s.long, s.field))
	}
}

func (c *Config) settings() []setting {
	return []setting{
		{"name", "n", "HA_NAME", "node name, unique in a cluster (default: host name)", &c.Name},
		{"host", "", "HA_HOST", "address the HTTP and NATS servers listen on (default: all)", &c.Host},
		{"port", "p", "HA_PORT", "HTTP port", &c.Port},
		{"tls-cert", "", "HA_TLS_CERT", "TLS certificate (PEM) for HTTPS", &c.TLSCert},
		{"tls-key", "", "HA_TLS_KEY", "TLS private key (PEM) for --tls-cert", &c.TLSKey},
		{"allow-cleartext", "", "HA_ALLOW_CLEARTEXT", "accept bearer tokens over plain HTTP from non-loopback addresses", &c.AllowCleartext},
		{"pg-port", "", "HA_PG_PORT", "PostgreSQL wire protocol port; 0: off; -1: any free port", &c.PGPort},
		{"pg-cert", "", "HA_PG_CERT", "TLS certificate (PEM) for PostgreSQL clients", &c.PGCert},
		{"pg-key", "", "HA_PG_KEY", "TLS private key (PEM) for --pg-cert", &c.PGKey},
		{"pg-allow-cleartext", "", "HA_PG_ALLOW_CLEARTEXT", "accept PostgreSQL passwords (tokens) without TLS from non-loopback addresses", &c.PGCleartext},
		{"pg-max-conns", "", "HA_PG_MAX_CONNS", "PostgreSQL connections served at once", &c.PGMaxConns},
		{"pg-idle-timeout", "", "HA_PG_IDLE_TIMEOUT", "close PostgreSQL connections idle outside a transaction this long (0: never)", &c.PGIdleTimeout},
		{"tx-idle-timeout", "", "HA_TX_IDLE_TIMEOUT", "roll back a writing transaction that waits this long for its next statement", &c.TxIdleTimeout},
		{"snapshot-interval", "", "HA_SNAPSHOT_INTERVAL", "take a snapshot of each database this often if it changed, for databases that set no snapshot_interval (0: only on request)", &c.SnapshotInterval},
		{"retention-snapshots", "", "HA_RETENTION_SNAPSHOTS", "keep at least this many newest snapshots of each database, for databases that set no retention", &c.RetentionSnapshots},
		{"retention-age", "", "HA_RETENTION_AGE", "keep every snapshot younger than this, and the stream after the oldest kept snapshot (0: keep every snapshot and the whole stream)", &c.RetentionAge},
		{"db-concurrency", "", "HA_DB_CONCURRENCY", "HTTP requests in flight, and PostgreSQL connections, one database may have at once (0: no limit)", &c.DBConcurrency},
		{"token-concurrency", "", "HA_TOKEN_CONCURRENCY", "HTTP requests in flight, and PostgreSQL connections, one token may have at once (0: no limit)", &c.TokenConcurrency},
		{"max-db-size", "", "HA_MAX_DB_SIZE", "largest size in bytes a database may grow to, for databases that set no max_size", &c.MaxDBSize},
		{"max-statement-time", "", "HA_MAX_STATEMENT_TIME", "interrupt a request (HTTP) or statement (PostgreSQL) running this long, for databases that set no max_statement_time", &c.MaxStatementTime},
		{"nats-port", "", "HA_NATS_PORT", "embedded NATS client port; 0: no embedded server (use --replication-url); -1: any free port", &c.NATSPort},
		{"replication-url", "", "HA_REPLICATION_URL", "NATS URL of an existing server, used with --nats-port 0", &c.ReplicationURL},
		{"nats-user", "", "HA_NATS_USER", "NATS user (default: hasvc)", &c.NATSUser},
		{"nats-pass", "", "HA_NATS_PASS", "NATS password (default: generated into <data-dir>/nats.password)", &c.NATSPass},
		{"fsync", "", "HA_FSYNC", `"always" (every acknowledged write is on disk before its answer) or an interval such as 1s (a power loss loses up to that much)`, &c.Fsync},
		{"join", "", "HA_JOIN", "cluster ports (host:port, comma-separated) of the other nodes; forms a JetStream cluster", &c.Join},
		{"cluster-port", "", "HA_CLUSTER_PORT", "port other nodes' servers connect to (with --join)", &c.ClusterPort},
		{"cluster-name", "", "HA_CLUSTER_NAME", "cluster name, the same on every node", &c.ClusterName},
		{"cluster-advertise", "", "HA_CLUSTER_ADVERTISE", "host:port other nodes reach this node's cluster port at, when it is not the listen address (NAT, containers)", &c.ClusterAdvertise},
		{"nats-monitor-port", "", "HA_NATS_MONITOR_PORT", "port of the embedded NATS server's monitoring endpoints (/varz, /routez, /jsz ...; no authentication); 0: off", &c.NATSMonitorPort},
		{"replicas", "", "HA_REPLICAS", "stream replicas for new databases (default: min(3, cluster size))", &c.Replicas},
		{"advertise", "", "HA_ADVERTISE", "HTTP address (URL or host:port) listed for this node in GET /cluster (default: the listen address; a machine address when listening on all)", &c.Advertise},
		{"memory", "m", "HA_MEMORY", "keep SQLite databases in memory (the log stays in JetStream)", &c.Memory},
		{"data-dir", "", "HA_DATA_DIR", "directory for SQLite files, the JetStream store and keys", &c.DataDir},
		{"jwt-secret", "", "HA_JWT_SECRET", "JWT signing secret, at least 32 bytes, shared by a cluster (default: <data-dir>/jwt.key)", &c.JWTSecret},
		{"jwt-keys", "", "HA_JWT_KEYS", "file of token keys by key id, HS256 or EdDSA (hasvc keygen makes them); reread on SIGHUP; overrides --jwt-secret", &c.JWTKeys},
		{"idle-timeout", "", "HA_IDLE_TIMEOUT", "close databases unused for this long", &c.IdleTimeout},
		{"max-open-dbs", "", "HA_MAX_OPEN_DBS", "databases open at once; opening another closes those used least recently (0: an 8th of the open-file limit, at most 4096, less what the rest of the node holds)", &c.MaxOpenDBs},
		{"publish-timeout", "", "HA_PUBLISH_TIMEOUT", "how long a write waits for JetStream's acknowledgement", &c.PublishTimeout},
		{"forward-writes", "", "HA_FORWARD_WRITES", "in a cluster, run a strong-mode database's writes on the node that leads its stream (false: on the node that takes them, racing the others)", &c.ForwardWrites},
		{"max-request-bytes", "", "HA_MAX_REQUEST_BYTES", "largest HTTP request body", &c.MaxRequestBytes},
		{"log-level", "", "HA_LOG_LEVEL", "debug, info, warn or error", &c.LogLevel},
		{"log-format", "", "HA_LOG_FORMAT", "text (key=value lines) or json (one object per line)", &c.LogFormat},
		{"config", "", "HA_CONFIG", "JSON config file with the long flag names as keys", &c.ConfigFile},
	}
}

// Parse fills c from args, the environment (getenv) and the config file.
func (c *Config) Parse(args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hasvc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: hasvc [flags] [FILE.db]    run a node
       hasvc sql [flags] DATABASE   a SQL shell over the HTTP API
       hasvc token --db NAME --perm read|write|admin --ttl 24h
       hasvc keygen --kid ID        a key for --jwt-keys
       hasvc replica --url URL --db NAME --out FILE   a live local copy
       hasvc ready [--url URL]      exit 0 when the node can serve writes
       hasvc version
Each command takes --help.

Flags (each also an HA_* environment variable):
`)
		fs.PrintDefaults()
	}
	settings := c.settings()
	for _, s := range settings {
		s.define(fs, s.long, fmt.Sprintf("%s (%s)", s.usage, s.env))
		if s.short != "" {
			s.define(fs, s.short, "short for --"+s.long)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, s := range settings {
		if s.short != "" && set[s.short] {
			set[s.long] = true
		}
	}
	if !set["config"] {
		if v := getenv("HA_CONFIG"); v != "" {
			c.ConfigFile = v
		}
	}
	file := map[string]any{}
	if c.ConfigFile != "" {
		data, err := os.ReadFile(c.ConfigFile)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		// Numbers stay as written: a float64 would turn 1073741824
		// into 1.073741824e+09, which an integer setting refuses.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&file); err != nil {
			return fmt.Errorf("config file %s: %w", c.ConfigFile, err)
		}
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.long] = true
		if set[s.long] {
			continue
		}
		if v := getenv(s.env); v != "" {
			if err := fs.Set(s.long, v); err != nil {
				return fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		} else if v, ok := file[s.long]; ok {
			if err := fs.Set(s.long, strings.Trim(fmt.Sprint(v), " ")); err != nil {
				return fmt.Errorf("config file %s: %q: %w", c.ConfigFile, s.long, err)
			}
		}
	}
	for k := range file {
		if !known[k] {
			return fmt.Errorf("config file %s: unknown setting %q", c.ConfigFile, k)
		}
	}
	switch fs.NArg() {
	case 0:
	case 1:
		c.Import = fs.Arg(0)
	default:
		return fmt.Errorf("at most one FILE.db to import, got %d arguments", fs.NArg())
	}
	return c.Validate()
}

// Validate says exactly what is wrong with c.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" || strings.ContainsAny(c.Name, " .*>") {
		errs = append(errs, fmt.Errorf("--name %q: want a non-empty name without spaces, '.', '*' or '>'", c.Name))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: want 0 to 65535", c.Port))
	}
	if c.NATSPort < -1 || c.NATSPort > 65535 {
		errs = append(errs, fmt.Errorf("--nats-port %d: want -1 to 65535", c.NATSPort))
	}
	if c.PGPort < -1 || c.PGPort > 65535 {
		errs = append(errs, fmt.Errorf("--pg-port %d: want -1 to 65535", c.PGPort))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if (c.PGCert == "") != (c.PGKey == "") {
		errs = append(errs, errors.New("--pg-cert and --pg-key go together"))
	}
	if c.PGMaxConns < 1 {
		errs = append(errs, fmt.Errorf("--pg-max-conns %d: want at least 1", c.PGMaxConns))
	}
	if c.PGIdleTimeout < 0 {
		errs = append(errs, errors.New("--pg-idle-timeout must not be negative"))
	}
	if c.MaxOpenDBs < 0 {
		errs = append(errs, errors.New("--max-open-dbs must not be negative"))
	}
	if c.MaxStatementTime <= 0 || c.MaxStatementTime > tenant.MaxStatementTimeLimit {
		errs = append(errs, fmt.Errorf("--max-statement-time %v: want more than 0 and up to %v", c.MaxStatementTime, tenant.MaxStatementTimeLimit))
	}
	if c.DBConcurrency < 0 || c.TokenConcurrency < 0 {
		errs = append(errs, errors.New("--db-concurrency and --token-concurrency must not be negative"))
	}
	if c.MaxDBSize <= 0 {
		errs = append(errs, fmt.Errorf("--max-db-size %d: want a positive number of bytes", c.MaxDBSize))
	}
	if c.TxIdleTimeout <= 0 {
		errs = append(errs, errors.New("--tx-idle-timeout must be positive"))
	}
	if c.RetentionSnapshots < 1 || c.RetentionSnapshots > 1000 {
		errs = append(errs, fmt.Errorf("--retention-snapshots %d: want 1 to 1000", c.RetentionSnapshots))
	}
	if c.RetentionAge < 0 {
		errs = append(errs, errors.New("--retention-age must not be negative"))
	}
	if c.SnapshotInterval != 0 && c.SnapshotInterval < time.Second {
		errs = append(errs, fmt.Errorf("--snapshot-interval %v: want 0 (off) or at least 1s", c.SnapshotInterval))
	}
	if c.NATSPort == 0 && c.ReplicationURL == "" {
		errs = append(errs, errors.New("--nats-port 0 needs --replication-url"))
	}
	if _, _, err := broker.ParseFsync(c.Fsync); err != nil {
		errs = append(errs, fmt.Errorf("--%w", err))
	}
	if c.ClusterPort < -1 || c.ClusterPort > 65535 {
		errs = append(errs, fmt.Errorf("--cluster-port %d: want -1 to 65535", c.ClusterPort))
	}
	if c.NATSMonitorPort < -1 || c.NATSMonitorPort > 65535 {
		errs = append(errs, fmt.Errorf("--nats-monitor-port %d: want -1 to 65535", c.NATSMonitorPort))
	}
	if c.NATSMonitorPort != 0 && c.NATSPort == 0 {
		errs = append(errs, errors.New("--nats-monitor-port monitors the embedded NATS server; it cannot go with --nats-port 0"))
	}
	if c.ClusterAdvertise != "" {
		if _, _, err := net.SplitHostPort(c.ClusterAdvertise); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-advertise %q: want host:port", c.ClusterAdvertise))
		}
	}
	if c.Join != "" && c.NATSPort == 0 {
		errs = append(errs, errors.New("--join forms a cluster of embedded servers; it cannot go with --nats-port 0"))
	}
	for _, peer := range c.Peers() {
		if _, _, err := net.SplitHostPort(peer); err != nil {
			errs = append(errs, fmt.Errorf("--join %q: want host:port", peer))
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1 to 5", c.Replicas))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("--jwt-secret must be at least 32 bytes"))
	}
	if c.MaxRequestBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-request-bytes %d: want at least 1024", c.MaxRequestBytes))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("--publish-timeout must be positive"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.Import != "" {
		if filepath.Ext(c.Import) == "" {
			errs = append(errs, fmt.Errorf("import %q: want a FILE.db path", c.Import))
		} else if _, err := os.Stat(c.Import); err != nil {
			errs = append(errs, fmt.Errorf("import: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Peers returns the --join list.
func (c *Config) Peers() []string {
	var out []string
	for _, p := range strings.Split(c.Join, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// StreamReplicas is the replica count of new databases: --replicas, or
// min(3, cluster size).
func (c *Config) StreamReplicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	return min(3, 1+len(c.otherPeers()))
}

// otherPeers is --join without the entries that name this node itself:
// NATS's habit is one identical route list for every node, each listing
// itself too, and the server ignores a route to itself; counted as a
// peer, it made a two-node cluster ask for three replicas, which it can
// never place.
func (c *Config) otherPeers() []string {
	var out []string
	for _, p := range c.Peers() {
		if !c.isSelf(p) {
			out = append(out, p)
		}
	}
	return out
}

// isSelf reports whether the route address peer (host:port) is this
// node's own cluster port: the same port on an address of this machine.
func (c *Config) isSelf(peer string) bool {
	host, port, err := net.SplitHostPort(peer)
	if err != nil || port != strconv.Itoa(c.ClusterPort) {
		return false
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	if listen := net.ParseIP(c.Host); c.Host != "" && !listen.IsUnspecified() {
		// Listening on one address: only that address is this node.
		if host == c.Host {
			return true
		}
		for _, ip := range ips {
			if ip.Equal(listen) {
				return true
			}
		}
		return false
	}
	local, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.IsLoopback() {
			return true
		}
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// ImportName is the database name a positional FILE.db is imported as.
func (c *Config) ImportName() string {
	base := filepath.Base(c.Import)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
