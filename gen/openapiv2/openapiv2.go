// Package openapiv2 holds the OpenAPI 2.0 document that protoc-gen-openapiv2 generates from the proto (buf
// generate writes groupgate.swagger.json next to this file; this file is the only one here not generated).
package openapiv2

import _ "embed"

// JSON is the OpenAPI 2.0 document of the HTTP/JSON API, served at GET /openapi.json.
//
//go:embed groupgate.swagger.json
var JSON []byte
