package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI describes every route, request and response of the API
// (OpenAPI 3.0). A test checks it against the routes registered and the
// answers real handlers give.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI document.
func OpenAPI() []byte { return openAPI }

func serveOpenAPI(c echo.Context) error {
	c.Response().Header().Set("Access-Control-Allow-Origin", "*")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
}
