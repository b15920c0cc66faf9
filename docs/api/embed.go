// Package api holds Chatterly's API reference: openapi.yaml (REST) and
// asyncapi.yaml (the /cable WebSocket), with the HTML rendered from the
// first. They are embedded so that the server serves the very files the
// tests check its answers against (cmd/chatterly/apispec_test.go).
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

var (
	//go:embed openapi.yaml
	openAPIYAML []byte
	//go:embed asyncapi.yaml
	asyncAPIYAML []byte
	//go:embed index.html
	referenceHTML []byte
)

// OpenAPIYAML is the OpenAPI 3.1 document as written.
func OpenAPIYAML() []byte { return openAPIYAML }

// AsyncAPIYAML is the AsyncAPI 3.0 document as written.
func AsyncAPIYAML() []byte { return asyncAPIYAML }

// ReferenceHTML is the rendered, self-contained reference (Redoc).
func ReferenceHTML() []byte { return referenceHTML }

// OpenAPIJSON is the OpenAPI document converted to JSON.
func OpenAPIJSON() ([]byte, error) { return ToJSON(openAPIYAML) }

// AsyncAPIJSON is the AsyncAPI document converted to JSON.
func AsyncAPIJSON() ([]byte, error) { return ToJSON(asyncAPIYAML) }

// ToJSON converts a YAML document whose mapping keys are all strings (as
// OpenAPI and AsyncAPI require) to JSON.
func ToJSON(doc []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("api: parsing YAML: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("api: converting to JSON: %w", err)
	}
	return b, nil
}
