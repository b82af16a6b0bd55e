package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// createRequest is the body of POST /databases.
type createRequest struct {
	Name             string          `json:"name"`
	Mode             string          `json:"mode"`
	Replicas         int             `json:"replicas"`
	MaxStatementTime tenant.Duration `json:"max_statement_time"`
	MaxSize          int64           `json:"max_size"`
}

func (s *Server) createDatabase(c echo.Context) error {
	var req createRequest
	if err := decodeBody(c, &req, `{"name": ..., "mode": "strong"|"eventual", "replicas": n, "max_statement_time": "30s", "max_size": bytes}`); err != nil {
		return err
	}
	if err := tenant.ValidateName(req.Name); err != nil {
		return err
	}
	if _, err := s.principal(c, req.Name, auth.PermAdmin); err != nil {
		return err
	}
	cfg, err := s.DB.Create(c.Request().Context(), tenant.Config{Name: req.Name, Mode: req.Mode, Replicas: req.Replicas, MaxStatementTime: req.MaxStatementTime, MaxSize: req.MaxSize})
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
// "max_statement_time": "10s"}, either optional; 0 means the node's
// default. Every node applies the change as it sees it.
func (s *Server) patchDatabase(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermAdmin); err != nil {
		return err
	}
	var l engine.Limits
	if err := decodeBody(c, &l, `{"max_size": bytes, "max_statement_time": "30s"} (mode and replicas do not change)`); err != nil {
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
