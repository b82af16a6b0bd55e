package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
)

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
