package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"hasvc/web"
)

// consoleCSP lets the console load only its own files and talk only to
// this node; no page may frame it.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// routeConsole serves the web console (package web) at /ui/, and sends
// / there. The console's files are public; what it shows comes from the
// API with the user's token.
func routeConsole(e *echo.Echo) {
	files := http.StripPrefix("/ui/", http.FileServerFS(web.Files))
	serve := func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	}
	toConsole := func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") }
	e.GET("/", toConsole)
	e.GET("/ui", toConsole)
	e.GET("/ui/*", serve)
}
