// Package api is hasvc's HTTP interface (echo): the data plane under
// /db/<name>, the control plane under /databases, and health.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Databases is what the API needs of the engine.
type Databases interface {
	// Create returns EINVALID for a bad configuration, ECONFLICT if the
	// name is taken, EUNAVAILABLE if JetStream is.
	Create(ctx context.Context, cfg tenant.Config) (tenant.Config, error)
	// Delete returns ENOTFOUND for an unknown database.
	Delete(ctx context.Context, name string) error
	List(ctx context.Context) ([]tenant.Config, error)
	// Info returns ENOTFOUND for an unknown database.
	Info(ctx context.Context, name string) (*engine.Info, error)
	// UpdateLimits changes a database's limits; ENOTFOUND, EINVALID.
	UpdateLimits(ctx context.Context, name string, l engine.Limits) (tenant.Config, error)
	// Repair rebuilds this node's copy of a database from its stream;
	// ENOTFOUND for an unknown database.
	Repair(ctx context.Context, name string) (*engine.Info, error)
	// Exec returns ENOTFOUND, EINVALID (SQL errors, naming the
	// statement), EFORBIDDEN (a write with readOnly, or SQL outside the
	// sandbox), ECONFLICT, ETOOLARGE, EUNAVAILABLE.
	// ETIMEOUT when the node does not reach opts' sequence in time.
	Exec(ctx context.Context, name string, stmts []sqlite.Statement, opts engine.ExecOptions) (*engine.ExecResult, error)
	// Backup returns ENOTFOUND for an unknown database.
	Backup(ctx context.Context, name string) (*engine.BackupFile, error)
	// CreateFromFile creates a database from an uploaded SQLite file;
	// EINVALID for a file it cannot take.
	CreateFromFile(ctx context.Context, cfg tenant.Config, r io.Reader) (tenant.Config, error)
	// Fork creates a database as a copy of another at a point; EINVALID
	// when the point is outside the kept history.
	Fork(ctx context.Context, cfg tenant.Config, from engine.ForkPoint) (tenant.Config, uint64, error)
	// Feed opens a database's change feed after a sequence, or from its
	// end; a *engine.TrimmedError when those messages were trimmed.
	Feed(ctx context.Context, name string, after uint64, fromEnd bool) (*engine.Feed, error)
	// History lists a database's newest writes and the oldest sequence
	// its stream keeps; ENOTFOUND.
	History(ctx context.Context, name string, limit int) ([]engine.Write, uint64, error)
	// Conflicts returns the newest row versions of an eventual-mode
	// database that lost to later ones.
	Conflicts(ctx context.Context, name string, limit int) ([]engine.Conflict, error)
	// TakeSnapshot stores a snapshot of the database in its bucket, or
	// returns the newest if it reflects the same sequence (taken false).
	TakeSnapshot(ctx context.Context, name string) (s engine.Snapshot, taken bool, err error)
	// Snapshots lists a database's snapshots, newest first.
	Snapshots(ctx context.Context, name string) ([]engine.Snapshot, error)
	// SnapshotFile writes the snapshot at seq (0: the newest) to a file to
	// download; ENOTFOUND.
	SnapshotFile(ctx context.Context, name string, seq uint64) (*engine.BackupFile, error)
	// Created returns when a database was created; ENOTFOUND.
	Created(ctx context.Context, name string) (time.Time, error)
	// Ready returns nil when the node can serve writes, else why not.
	Ready(ctx context.Context) error
	// Cluster returns EUNAVAILABLE when JetStream is.
	Cluster(ctx context.Context) (*engine.ClusterInfo, error)
}

// Verifier checks bearer tokens.
type Verifier interface {
	// Verify returns EUNAUTHORIZED for a bad, expired or foreign token.
	Verify(token string) (*auth.Principal, error)
}

// DefaultMaxBodyBytes is the request body limit unless MaxBodyBytes says
// otherwise.
const DefaultMaxBodyBytes = 8 << 20

// Server serves the HTTP API.
type Server struct {
	DB           Databases
	Auth         Verifier
	Logger       *slog.Logger
	MaxBodyBytes int64 // request body limit
	// Metrics serves GET /metrics (Prometheus text format) to admin
	// tokens, if set: it names every tenant's databases.
	Metrics http.Handler
	// Concurrency bounds the requests a database and a token run at
	// once (nil: no bound).
	Concurrency *tenant.Concurrency
	// AllowCleartext accepts bearer tokens over plain HTTP from any
	// address; without it, only from loopback (TLS is for the others).
	AllowCleartext bool
	// Revoke puts a token (given whole, or by id) on the deny list and
	// returns its id: POST /tokens/revoke; nil: no such route.
	Revoke func(ctx context.Context, token, id string) (string, error)
	// Issue signs a token for POST /tokens; nil: no such route (a node
	// that holds public keys only).
	Issue func(p auth.Principal, ttl time.Duration) (string, error)
	// Consumers, if set, serves the tenants' NATS consumers.
	Consumers Consumers

	echo         *echo.Echo
	closeStreams sync.Once
	closing      chan struct{} // closed by CloseStreams
}

// CloseStreams ends the change feeds being served, so that a graceful
// shutdown does not wait for them (they never end by themselves): their
// clients reconnect, to another node if they know one.
func (s *Server) CloseStreams() {
	s.closeStreams.Do(func() { close(s.streamsClosing()) })
}

func (s *Server) streamsClosing() chan struct{} {
	if s.closing == nil {
		s.closing = make(chan struct{})
	}
	return s.closing
}

// Handler returns the HTTP handler, building it on first use.
func (s *Server) Handler() http.Handler {
	if s.echo != nil {
		return s.echo
	}
	s.streamsClosing()
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = jsonSerializer{}

	e.GET("/healthz", s.health)
	e.GET("/readyz", s.ready)
	routeConsole(e)
	e.GET("/openapi.json", serveOpenAPI)
	a := e.Group("", s.authenticate)
	if s.Metrics != nil {
		a.GET("/metrics", s.metrics)
	}
	a.POST("/databases", s.createDatabase)
	a.GET("/databases", s.listDatabases)
	a.GET("/databases/:name", s.getDatabase)
	a.DELETE("/databases/:name", s.deleteDatabase)
	a.POST("/databases/:name/repair", s.repairDatabase)
	a.PATCH("/databases/:name", s.patchDatabase)
	a.POST("/db/:name", s.query)
	a.GET("/db/:name/backup", s.backup)
	a.POST("/db/:name/snapshot", s.takeSnapshot)
	a.GET("/db/:name/snapshot", s.downloadSnapshot)
	a.GET("/db/:name/snapshots", s.listSnapshots)
	a.GET("/db/:name/snapshots/:seq", s.downloadSnapshot)
	a.GET("/db/:name/history", s.history)
	a.GET("/db/:name/conflicts", s.conflicts)
	a.GET("/db/:name/changes", s.changes)
	a.GET("/cluster", s.cluster)
	a.GET("/token", s.whoami)
	if s.Issue != nil {
		a.POST("/tokens", s.mintToken)
	}
	if s.Revoke != nil {
		a.POST("/tokens/revoke", s.revokeToken)
	}
	if s.Consumers != nil {
		a.PUT("/db/:name/consumers/:consumer", s.putConsumer)
		a.DELETE("/db/:name/consumers/:consumer", s.deleteConsumer)
	}
	s.echo = e
	return e
}

// cluster serves GET /cluster (admin): the live nodes and JetStream's view.
func (s *Server) cluster(c echo.Context) error {
	if _, err := s.principal(c, "", auth.PermAdmin); err != nil {
		return err
	}
	ci, err := s.DB.Cluster(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ci)
}

// metrics serves GET /metrics (admin).
func (s *Server) metrics(c echo.Context) error {
	if _, err := s.principal(c, "", auth.PermAdmin); err != nil {
		return err
	}
	s.Metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}

func (s *Server) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// ready serves GET /readyz: 200 when the node can serve writes, 503 with
// the reason otherwise (no token needed, for load balancers and
// orchestrators).
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.DB.Ready(ctx); err != nil {
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// authenticate verifies the bearer token and puts its principal in the
// request's context.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().TLS == nil && !s.AllowCleartext && !fromLoopback(c.Request()) {
			// The token has crossed the network in the clear already;
			// refusing it tells the operator before it is used.
			return tenant.Errorf(tenant.EUNAUTHORIZED, "a bearer token over plain HTTP is accepted only from this machine: use https (--tls-cert) or start the node with --allow-cleartext")
		}
		token, ok := bearerToken(c.Request())
		if !ok && c.Request().Method == http.MethodGet && strings.HasSuffix(c.Request().URL.Path, "/changes") {
			// A browser's EventSource cannot send headers: the change feed
			// takes its token in the query string too.
			token = c.QueryParam("access_token")
			ok = token != ""
		}
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hasvc"`)
			return tenant.Errorf(tenant.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <token>")
		}
		p, err := s.Auth.Verify(token)
		if err != nil {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hasvc", error="invalid_token"`)
			return err
		}
		// The token also names the client whose share of a database's
		// readers the request counts against.
		r := c.Request()
		c.SetRequest(r.WithContext(engine.WithClient(auth.NewContext(r.Context(), p), token)))
		return next(c)
	}
}

// bearerToken returns the request's bearer token, and false if it sent
// none.
func bearerToken(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(token), ok && token != ""
}

// principal returns the request's principal after checking it may do perm
// on database db ("" for no database in particular), and that a token
// naming db was issued for this database of that name, not one deleted
// before.
func (s *Server) principal(c echo.Context, db string, perm auth.Perm) (*auth.Principal, error) {
	p := auth.FromContext(c.Request().Context())
	if p == nil {
		return nil, tenant.Errorf(tenant.EUNAUTHORIZED, "not authenticated")
	}
	if db == "" {
		return p, p.Can(db, perm)
	}
	if err := tenant.ValidateName(db); err != nil {
		return nil, err
	}
	if err := p.Can(db, perm); err != nil {
		return nil, err
	}
	if p.Names(db) {
		created, err := s.DB.Created(c.Request().Context(), db)
		if err != nil && tenant.ErrorCode(err) != tenant.ENOTFOUND {
			return nil, err
		}
		if err == nil {
			return p, p.CheckCreated(db, created)
		}
	}
	return p, nil
}

// statusOf is the one mapping from error codes to HTTP statuses.
var statusOf = map[string]int{
	tenant.EINVALID:      http.StatusBadRequest,
	tenant.EUNAUTHORIZED: http.StatusUnauthorized,
	tenant.EFORBIDDEN:    http.StatusForbidden,
	tenant.ENOTFOUND:     http.StatusNotFound,
	tenant.ECONFLICT:     http.StatusConflict,
	tenant.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	tenant.ETIMEOUT:      http.StatusGatewayTimeout,
	tenant.ETOOMANY:      http.StatusTooManyRequests,
	tenant.EUNAVAILABLE:  http.StatusServiceUnavailable,
	tenant.EINTERNAL:     http.StatusInternalServerError,
}

// handleError writes any error as {"error": {"code", "message",
// "statement"}} with the status its code maps to. It is the one place
// errors leave the API, and where they are logged.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		code := tenant.EINVALID
		switch he.Code {
		case http.StatusNotFound:
			code = tenant.ENOTFOUND
			if allow := s.allowedMethods(c.Request().URL.Path); len(allow) > 0 {
				// The route exists with other methods: say which, rather
				// than a 404 that reads as "no such database".
				c.Response().Header().Set("Allow", strings.Join(allow, ", "))
				if err := c.JSON(http.StatusMethodNotAllowed, map[string]errorBody{"error": {Code: "EMETHOD",
					Message: fmt.Sprintf("%s is not allowed on %s; allowed: %s", c.Request().Method, c.Request().URL.Path, strings.Join(allow, ", "))}}); err != nil {
					s.Logger.Error("write error response", "err", err)
				}
				return
			}
		case http.StatusRequestEntityTooLarge:
			code = tenant.ETOOLARGE
		}
		err = tenant.Errorf(code, "%v", he.Message)
	case errors.As(err, &mbe):
		err = tenant.Errorf(tenant.ETOOLARGE, "request body over %d bytes", mbe.Limit)
	case errors.Is(err, context.Canceled):
		err = tenant.Errorf(tenant.EUNAVAILABLE, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		err = tenant.Errorf(tenant.ETIMEOUT, "request timed out")
	}
	code := tenant.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == tenant.EUNAVAILABLE && c.Response().Header().Get("Retry-After") == "" {
		// Unavailable for now (no quorum, a leader moving, a node
		// stopping): worth sending again, not at once.
		c.Response().Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		s.Logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	body := errorBody{Code: code, Message: tenant.ErrorMessage(err)}
	if i := tenant.ErrorStatement(err); i >= 0 {
		body.Statement = &i
	}
	if err := c.JSON(status, map[string]errorBody{"error": body}); err != nil {
		s.Logger.Error("write error response", "err", err)
	}
}

type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Statement *int   `json:"statement,omitempty"`
}

// jsonSerializer is echo's JSON serializer without HTML escaping, which
// only obscures error messages that quote SQL.
type jsonSerializer struct{ echo.DefaultJSONSerializer }

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

// jsonProblem says what is wrong with a JSON body in hasvc's words: the
// decoder's own text names Go types and is not shown to users.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%q cannot be a JSON %s", te.Field, te.Value)
	case errors.As(err, &te):
		return fmt.Sprintf("a JSON %s is not allowed here", te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	case errors.Is(err, errExtraData):
		return "data after the statements"
	}
	return "unknown field or malformed JSON"
}

// fromLoopback reports whether the request came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// responseWriteTime bounds how long a client may take to read a query's
// response: a client that asks for a large result and never reads it
// would otherwise hold the result in the node's memory.
const responseWriteTime = 30 * time.Second

// writeDeadline gives the response of c until d from now to be written.
func writeDeadline(c echo.Context, d time.Duration) {
	// Not every ResponseWriter supports deadlines (tests' recorders):
	// there is nothing to bound then.
	_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(d))
}

// admit counts a request against its database's and its token's
// concurrency limits; ETOOMANY past them.
func (s *Server) admit(c echo.Context, db string) (func(), error) {
	if s.Concurrency == nil {
		return func() {}, nil
	}
	token, _ := bearerToken(c.Request())
	return s.Concurrency.Acquire(db, token)
}

// allowedMethods lists the methods a route at path takes (none if no
// route has that path).
func (s *Server) allowedMethods(path string) []string {
	if s.echo == nil {
		return nil // not serving (a handler tested alone)
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		c := s.echo.NewContext(nil, nil)
		s.echo.Router().Find(m, path, c)
		if p := c.Path(); p != "" && p != "/*" && !strings.HasSuffix(p, "/*") {
			allow = append(allow, m)
		}
	}
	return allow
}
