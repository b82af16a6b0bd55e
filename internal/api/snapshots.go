package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
)

// takeSnapshot serves POST /db/<name>/snapshot (write permission): it
// stores a snapshot of the database in its bucket and describes it (201
// when it took one, 200 when the newest already reflected the database's
// sequence).
func (s *Server) takeSnapshot(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermWrite); err != nil {
		return err
	}
	release, err := s.admit(c, name)
	if err != nil {
		return err
	}
	defer release()
	snap, taken, err := s.DB.TakeSnapshot(c.Request().Context(), name)
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Sequence", strconv.FormatUint(snap.Sequence, 10))
	status := http.StatusOK
	if taken {
		status = http.StatusCreated
	}
	return c.JSON(status, snap)
}

// listSnapshots serves GET /db/<name>/snapshots (read permission).
func (s *Server) listSnapshots(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	list, err := s.DB.Snapshots(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"snapshots": list})
}

// downloadSnapshot serves GET /db/<name>/snapshot (the newest) and GET
// /db/<name>/snapshots/<seq> (read permission): the snapshot's SQLite
// file.
func (s *Server) downloadSnapshot(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	var seq uint64
	if v := c.Param("seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return tenant.Errorf(tenant.EINVALID, "snapshot sequence %q is not a positive integer", v)
		}
		seq = n
	}
	release, err := s.admit(c, name)
	if err != nil {
		return err
	}
	defer release()
	r, err := s.DB.SnapshotFile(c.Request().Context(), name, seq)
	if err != nil {
		return err
	}
	defer r.Close()
	return sendFile(c, name, r)
}

// history serves GET /db/<name>/history?limit=n (read permission): the
// newest writes, to find a point to fork or restore at.
func (s *Server) history(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	limit, err := limitParam(c, 20)
	if err != nil {
		return err
	}
	writes, first, err := s.DB.History(c.Request().Context(), name, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"history": writes, "first_seq": first})
}

// conflicts serves GET /db/<name>/conflicts?limit=n (read permission):
// the newest row versions of an eventual-mode database that lost to later
// ones, as this node's copy recorded them.
func (s *Server) conflicts(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	limit, err := limitParam(c, 100)
	if err != nil {
		return err
	}
	list, err := s.DB.Conflicts(c.Request().Context(), name, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"conflicts": list})
}

// limitParam reads the query parameter limit, 1 to 1000, def if absent.
func limitParam(c echo.Context, def int) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, tenant.Errorf(tenant.EINVALID, "limit %q: want 1 to 1000", v)
	}
	return n, nil
}
