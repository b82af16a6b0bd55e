package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
)

// tokenInfo is what GET /token says about the caller's own token.
type tokenInfo struct {
	Subject   string    `json:"subject"`
	Databases []string  `json:"databases"`
	Perm      string    `json:"perm"`
	ExpiresAt time.Time `json:"expires_at"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	ID        string    `json:"id,omitempty"`
}

func infoOf(p *auth.Principal) tokenInfo {
	return tokenInfo{Subject: p.Subject, Databases: p.Databases, Perm: p.Perm.String(),
		ExpiresAt: p.ExpiresAt.UTC(), IssuedAt: p.IssuedAt.UTC(), ID: p.ID}
}

// whoami serves GET /token (any valid token): what the token itself
// allows, so a client (the console) can show it and offer only what it
// may do.
func (s *Server) whoami(c echo.Context) error {
	p, err := s.principal(c, "", auth.PermRead)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, infoOf(p))
}

// maxTokenTTL bounds a minted token's life when its issuer's own expiry
// does not bound it sooner.
const maxTokenTTL = 366 * 24 * time.Hour

// mintToken serves POST /tokens (admin): {"databases": ["mydb"], "perm":
// "read", "ttl": "24h", "subject": "app"}. A token can only hand on what
// it holds: databases it covers, a permission it has, and a life that
// ends no later than its own.
func (s *Server) mintToken(c echo.Context) error {
	p, err := s.principal(c, "", auth.PermAdmin)
	if err != nil {
		return err
	}
	var req struct {
		Databases []string        `json:"databases"`
		Perm      string          `json:"perm"`
		TTL       tenant.Duration `json:"ttl"`
		Subject   string          `json:"subject"`
	}
	if err := decodeBody(c, &req, `{"databases": ["mydb"], "perm": "read", "ttl": "24h", "subject": "app"}`); err != nil {
		return err
	}
	if req.Perm == "" {
		req.Perm = "read"
	}
	perm, err := auth.ParsePerm(req.Perm)
	if err != nil {
		return err
	}
	if len(req.Databases) == 0 {
		return tenant.Errorf(tenant.EINVALID, `"databases" must name at least one database (or "*" for all)`)
	}
	for _, db := range req.Databases {
		if db == "*" {
			if !p.Names("*") {
				return tenant.Errorf(tenant.EFORBIDDEN, `only a token for every database ("*") can mint one`)
			}
			continue
		}
		if err := tenant.ValidateName(db); err != nil {
			return err
		}
		if err := p.Can(db, perm); err != nil {
			return err
		}
	}
	ttl := time.Duration(req.TTL)
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if ttl < 0 {
		return tenant.Errorf(tenant.EINVALID, `"ttl" must be positive`)
	}
	if ttl > maxTokenTTL {
		return tenant.Errorf(tenant.EINVALID, `"ttl" may be at most %s`, maxTokenTTL)
	}
	if left := time.Until(p.ExpiresAt); ttl > left {
		return tenant.Errorf(tenant.EINVALID, "a token cannot outlive the token that mints it: this one expires in %s", left.Truncate(time.Second))
	}
	if req.Subject == "" {
		req.Subject = p.Subject
	}
	if len(req.Subject) > 200 {
		return tenant.Errorf(tenant.EINVALID, `"subject" may be at most 200 bytes`)
	}
	minted := auth.Principal{Subject: req.Subject, Databases: req.Databases, Perm: perm}
	tok, err := s.Issue(minted, ttl)
	if err != nil {
		return err
	}
	v, err := s.Auth.Verify(tok)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"token": tok, "info": infoOf(v)})
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
