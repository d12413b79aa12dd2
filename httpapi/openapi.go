package httpapi

import (
	_ "embed"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
)

// openAPIDocument describes every route this package serves; a test holds
// it and the routes to each other.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the OpenAPI document: clients built
// with the server, such as its command line, read from it the values an
// input takes, so that they check them as the API does.
func OpenAPIDocument() []byte { return slices.Clone(openAPIDocument) }

func serveOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json; charset=utf-8", openAPIDocument)
}
