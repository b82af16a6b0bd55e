package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
)

// Consumers is what the consumer routes need of the engine.
type Consumers interface {
	CreateConsumer(ctx context.Context, db, name string, from uint64) (*engine.ConsumerInfo, error)
	DeleteConsumer(ctx context.Context, db, name string) error
}

// revokeToken serves POST /tokens/revoke (admin): {"token": "..."} or
// {"id": "<jti>"}. Every node refuses the token within a second, ends its
// PostgreSQL sessions and NATS connections.
func (s *Server) revokeToken(c echo.Context) error {
	if _, err := s.principal(c, "", auth.PermAdmin); err != nil {
		return err
	}
	var req struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	if err := decodeBody(c, &req, `{"token": "..."} or {"id": "<token id>"}`); err != nil {
		return err
	}
	id, err := s.Revoke(c.Request().Context(), req.Token, req.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revoked": id})
}

// putConsumer serves PUT /db/:name/consumers/:consumer (read): a durable
// pull consumer on the database's stream for the NATS change feed, from
// sequence {"from_seq": N} (default 1).
func (s *Server) putConsumer(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	var req struct {
		FromSeq uint64 `json:"from_seq"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeBody(c, &req, `{"from_seq": n}`); err != nil {
			return err
		}
	}
	ci, err := s.Consumers.CreateConsumer(c.Request().Context(), name, c.Param("consumer"), req.FromSeq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ci)
}

// deleteConsumer serves DELETE /db/:name/consumers/:consumer (read).
func (s *Server) deleteConsumer(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.principal(c, name, auth.PermRead); err != nil {
		return err
	}
	if err := s.Consumers.DeleteConsumer(c.Request().Context(), name, c.Param("consumer")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
