// Package broker runs the NATS server with JetStream that a hasvc node
// embeds, and connects to it or to an existing NATS server.
package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hasvc/internal/fsutil"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures the embedded server.
type Config struct {
	Name     string // server name (the node name)
	Host     string // client listen host
	Port     int    // client port; -1 picks a free one
	StoreDir string // JetStream file store
	User     string // client credential; clients without it are refused
	Password string
	// Fsync is "always" (every acknowledged message is on disk: see
	// Flusher) or a Go duration (fsync at that interval; a process crash
	// loses nothing, a power loss may lose that much).
	Fsync      string
	MaxPayload int32
	Logger     *slog.Logger
	// Authorize lets tenants in with their tokens (see access.go); nil:
	// only the node credential is accepted.
	Authorize Authorizer

	// Clustering: with ClusterPort set, the server listens for routes
	// from the other nodes' servers and connects to Routes (host:port of
	// their cluster ports); together they form one JetStream cluster named
	// ClusterName. Routes authenticate with the client credential, so every
	// node of a cluster needs the same one.
	ClusterName string
	ClusterPort int
	Routes      []string
	// ClusterAdvertise is the host:port the other nodes reach this
	// node's cluster port at, if not the listen address.
	ClusterAdvertise string

	// MonitorPort serves NATS's monitoring endpoints (/varz, /routez,
	// /jsz ...) on Host; 0: off, -1: any free port.
	MonitorPort int
}

// Server is a running embedded NATS server.
type Server struct {
	ns      *server.Server
	user    string
	pass    string
	flusher *Flusher
}

// Start starts the server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	// The server listens in a goroutine of its own and only logs a port
	// in use; find out here, at once, rather than after the 30 s wait.
	for _, p := range []struct {
		flag string
		port int
	}{{"--nats-port", cfg.Port}, {"--cluster-port", cfg.ClusterPort}, {"--nats-monitor-port", cfg.MonitorPort}} {
		if p.port <= 0 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(p.port)))
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", p.flag, p.port, err)
		}
		ln.Close()
	}
	opts := &server.Options{
		ServerName:            cfg.Name,
		Host:                  cfg.Host,
		Port:                  cfg.Port,
		JetStream:             true,
		StoreDir:              cfg.StoreDir,
		MaxPayload:            cfg.MaxPayload,
		NoSigs:                true,
		NoSystemAccount:       false,
		DisableShortFirstPing: true,
	}
	if cfg.User == "" || cfg.Password == "" {
		return nil, errors.New("nats server: the node credential needs a user and a password")
	}
	var ns *server.Server
	opts.CustomClientAuthentication = &authenticator{
		ns: func() *server.Server { return ns }, user: cfg.User, pass: cfg.Password, authorize: cfg.Authorize,
	}
	var err error
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	groupCommit := false
	if cfg.Fsync != "" {
		always, every, err := ParseFsync(cfg.Fsync)
		if err != nil {
			return nil, err
		}
		opts.SyncAlways, opts.SyncInterval = always, every
		if always && cfg.ClusterPort == 0 {
			// Group commit (see Flusher): the writers fsync once per
			// acknowledged group; the server's own interval is a
			// backstop for what they do not cover.
			opts.SyncAlways, opts.SyncInterval = false, time.Minute
			groupCommit = true
		}
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{
			Name:      cfg.ClusterName,
			Host:      cfg.Host,
			Port:      cfg.ClusterPort,
			Username:  cfg.User,
			Password:  cfg.Password,
			Advertise: cfg.ClusterAdvertise,
		}
		var urls []string
		for _, r := range cfg.Routes {
			urls = append(urls, fmt.Sprintf("nats://%s:%s@%s", url.QueryEscape(cfg.User), url.QueryEscape(cfg.Password), r))
		}
		opts.Routes = server.RoutesFromStr(strings.Join(urls, ","))
	}
	if cfg.MonitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = cfg.Host, cfg.MonitorPort
	}
	if opts.Accounts, err = databaseAccounts(); err != nil {
		return nil, err
	}
	ns, err = server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if err := exportReadOnlyAPI(ns); err != nil {
		return nil, err
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&logger{cfg.Logger.With("component", "nats")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats server did not start in 30s")
	}
	srv := &Server{ns: ns, user: cfg.User, pass: cfg.Password}
	if groupCommit {
		srv.flusher = newFlusher(ns.StoreDir(), ns.GlobalAccount().Name)
	}
	return srv, nil
}

// Flusher returns what makes acknowledged messages durable under
// `--fsync always` on a node without a cluster, or nil when the server
// does it itself (or the policy is an interval).
func (s *Server) Flusher() *Flusher { return s.flusher }

// MonitorAddr returns the address of the monitoring endpoints, or "" when
// they are off.
func (s *Server) MonitorAddr() string {
	if a := s.ns.MonitorAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Peers returns the names of the JetStream cluster's servers this server
// knows of, itself included.
func (s *Server) Peers() []string {
	if !s.ns.JetStreamIsClustered() {
		return []string{s.ns.Name()}
	}
	return s.ns.JetStreamClusterPeers()
}

// JetStreamInfo returns the server's view of JetStream: the meta
// cluster's leader and peers, and usage.
func (s *Server) JetStreamInfo() (*server.JSInfo, error) {
	return s.ns.Jsz(&server.JSzOptions{})
}

// ClientURL returns the URL other processes connect to (without the
// credential).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Connect returns an in-process client connection to the server, in the
// global account.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	return s.ConnectAccount(name, "")
}

// ConnectAccount returns an in-process client connection to the server in
// account, one of the databases' accounts (tenant.AccountName), or in the
// global account if account is "".
func (s *Server) ConnectAccount(name, account string) (*nats.Conn, error) {
	user := s.user
	if account != "" {
		user = AccountUser(s.user, account)
	}
	return nats.Connect("", nats.InProcessServer(s.ns), nats.UserInfo(user, s.pass), nats.Name(name),
		nats.MaxReconnects(-1))
}

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Dial connects to an existing NATS server at url, with user and password
// if given (they may also be in the URL).
func Dial(url, name, user, pass string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	if user == "" && pass != "" {
		user = DefaultUser
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	return nats.Connect(url, opts...)
}

// Credential returns the NATS client credential: user and password given,
// or the password kept in dataDir/nats.password (made on first start).
func Credential(dataDir, user, pass string) (string, string, error) {
	if user == "" {
		user = DefaultUser
	}
	if pass != "" {
		return user, pass, nil
	}
	path := filepath.Join(dataDir, "nats.password")
	if b, err := os.ReadFile(path); err == nil {
		return user, strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", "", err
	}
	pass = hex.EncodeToString(buf)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	if err := fsutil.WriteFile(path, []byte(pass+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return user, pass, nil
}

// logger adapts slog to the NATS server's logger.
type logger struct{ l *slog.Logger }

func (l *logger) Noticef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Warnf(format string, v ...any)   { l.l.Warn(fmt.Sprintf(format, v...)) }
func (l *logger) Fatalf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Debugf(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Tracef(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }

// DefaultUser is the NATS user of hasvc's nodes when none is given.
const DefaultUser = "hasvc"

// DefaultFsync is the fsync policy when none is given: every acknowledged
// write is on disk (NATS's own default, a 2-minute interval, can lose two
// minutes of acknowledged writes, and every stream's metadata with them,
// in a power loss).
const DefaultFsync = "always"

// ParseFsync reads an fsync policy: "always" (every acknowledged message
// is on disk) or a positive interval.
func ParseFsync(s string) (always bool, every time.Duration, err error) {
	if s == "always" {
		return true, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("fsync %q: want \"always\" or a positive duration such as 1s", s)
	}
	return false, d, nil
}
