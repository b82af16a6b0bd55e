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
