package http

import (
	nethttp "net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/docs/api"
)

// routeDocs serves the API reference that the tests hold the server to, so
// that a client generator or a person reads the contract of this very build.
func (s *Server) routeDocs(e *echo.Echo) {
	openAPIJSON, jsonErr := api.OpenAPIJSON()
	e.GET("/openapi.json", func(c echo.Context) error {
		if jsonErr != nil {
			return jsonErr // cannot happen with a document the tests have parsed
		}
		return c.Blob(nethttp.StatusOK, echo.MIMEApplicationJSON, openAPIJSON)
	})
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(nethttp.StatusOK, "application/yaml", api.OpenAPIYAML())
	})
	e.GET("/asyncapi.yaml", func(c echo.Context) error {
		return c.Blob(nethttp.StatusOK, "application/yaml", api.AsyncAPIYAML())
	})
	e.GET("/docs", func(c echo.Context) error {
		return c.Blob(nethttp.StatusOK, echo.MIMETextHTMLCharsetUTF8, api.ReferenceHTML())
	})
}
