package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// createRequest is the body of POST /databases.
type createRequest struct {
	Name             string            `json:"name"`
	Mode             string            `json:"mode"`
	Replicas         int               `json:"replicas"`
	MaxStatementTime tenant.Duration   `json:"max_statement_time"`
	MaxSize          int64             `json:"max_size"`
	SnapshotInterval tenant.Duration   `json:"snapshot_interval"`
	Retention        *tenant.Retention `json:"retention"`
	// From makes the database a copy of another as it is, or was at a
	// sequence or a time.
	From *engine.ForkPoint `json:"from"`
}

// forked is the answer to a create with "from": the new database's
// configuration and the point it copies.
type forked struct {
	tenant.Config
	From engine.ForkPoint `json:"from"`
}

func (s *Server) createDatabase(c echo.Context) error {
	if ct := c.Request().Header.Get("Content-Type"); strings.HasPrefix(ct, "application/vnd.sqlite3") || strings.HasPrefix(ct, "application/x-sqlite3") {
		return s.uploadDatabase(c)
	}
	var req createRequest
	if err := decodeBody(c, &req, `{"name": ..., "mode": "strong"|"eventual", "replicas": n, "max_statement_time": "30s", "max_size": bytes, "snapshot_interval": "1h", "retention": {"snapshots": 3, "max_age": "168h"}, "from": {"database": ..., "sequence": n | "time": "2026-11-29T10:00:00Z"}}`); err != nil {
		return err
	}
	if err := tenant.ValidateName(req.Name); err != nil {
		return err
	}
	if _, err := s.principal(c, req.Name, auth.PermAdmin); err != nil {
		return err
	}
	cfg := tenant.Config{Name: req.Name, Mode: req.Mode, Replicas: req.Replicas, MaxStatementTime: req.MaxStatementTime, MaxSize: req.MaxSize, SnapshotInterval: req.SnapshotInterval, Retention: req.Retention}
	if req.From != nil {
		if err := tenant.ValidateName(req.From.Database); err != nil {
			return err
		}
		if _, err := s.principal(c, req.From.Database, auth.PermRead); err != nil {
			return err
		}
		if req.From.Sequence > 0 && !req.From.Time.IsZero() {
			return tenant.Errorf(tenant.EINVALID, `"from" takes a sequence or a time, not both`)
		}
		cfg, at, err := s.DB.Fork(c.Request().Context(), cfg, *req.From)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, forked{cfg, engine.ForkPoint{Database: req.From.Database, Sequence: at}})
	}
	cfg, err := s.DB.Create(c.Request().Context(), cfg)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, cfg)
}

func (s *Server) listDatabases(c echo.Context) error {
	p, err := s.principal(c, "", auth.PermRead)
	if err != nil {
		return err
	}
	all, err := s.DB.List(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]tenant.Config, 0, len(all))
	for _, cfg := range all {
		if p.Covers(cfg.Name) {
			out = append(out, cfg)
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"databases": out})
}

func (s *Server) getDatabase(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	info, err := s.DB.Info(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) deleteDatabase(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermAdmin); err != nil {
		return err
	}
	if err := s.DB.Delete(c.Request().Context(), name); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// repairDatabase serves POST /databases/<name>/repair (admin): this node's
// copy is thrown away and rebuilt from the stream, the way out for a copy
// stuck on a message it could not apply.
func (s *Server) repairDatabase(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermAdmin); err != nil {
		return err
	}
	info, err := s.DB.Repair(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

// patchDatabase serves PATCH /databases/<name> (admin): {"max_size": bytes,
// "max_statement_time": "10s", "snapshot_interval": "1h"}, each optional; 0 means the node's
// default. Every node applies the change as it sees it.
func (s *Server) patchDatabase(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermAdmin); err != nil {
		return err
	}
	var l engine.Limits
	if err := decodeBody(c, &l, `{"max_size": bytes, "max_statement_time": "30s", "snapshot_interval": "1h", "retention": {"snapshots": 3, "max_age": "168h"}} (mode and replicas do not change)`); err != nil {
		return err
	}
	cfg, err := s.DB.UpdateLimits(c.Request().Context(), name, l)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cfg)
}

// decodeBody decodes a small JSON request body (64 KiB at most, no unknown
// fields) into v; want describes the expected body for the error.
func decodeBody(c echo.Context, v any, want string) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return tenant.Wrap(tenant.EINVALID, err, "invalid body: want "+want+": "+jsonProblem(err))
	}
	return nil
}

// uploadDatabase serves POST /databases?name=... with a SQLite file as the
// body (Content-Type application/vnd.sqlite3): a new database holding
// the file's tables and rows. mode and replicas may be given in the query
// string too.
func (s *Server) uploadDatabase(c echo.Context) error {
	q := c.QueryParams()
	cfg := tenant.Config{Name: q.Get("name"), Mode: q.Get("mode")}
	if err := tenant.ValidateName(cfg.Name); err != nil {
		return err
	}
	if v := q.Get("replicas"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return tenant.Errorf(tenant.EINVALID, "replicas %q is not a number", v)
		}
		cfg.Replicas = n
	}
	if _, err := s.principal(c, cfg.Name, auth.PermAdmin); err != nil {
		return err
	}
	// A large file takes longer than an ordinary body: a minute, then a
	// second per megabyte its length announces.
	if n := c.Request().ContentLength; n > 0 {
		_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(time.Minute + time.Duration(n>>20)*time.Second))
	}
	cfg, err := s.DB.CreateFromFile(c.Request().Context(), cfg, c.Request().Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, cfg)
}
