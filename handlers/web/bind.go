package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// bindJSON decodes the request body strictly into dst (a pointer to a struct):
//
//   - a Content-Type, when present, must be application/json or a +json type;
//   - the body must be one JSON object: not empty, not null, not an array, nothing after it;
//   - it must be valid UTF-8 and at most MaxBodyBytes long;
//   - unknown fields and values of the wrong type are refused.
//
// Every failure is an error of kind ErrInvalidRequest with a client-safe detail that names the
// field at fault but never echoes the body; pass it to writeError. Validating the values
// (required fields, formats) is the handler's job.
func BindJSON(c *gin.Context, dst any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeStrict(body, dst)
}

// bindOptionalJSON is bindJSON for a route whose body may be left out: an empty body (or
// only white space) leaves dst as it is; any other body follows bindJSON's rules.
func BindOptionalJSON(c *gin.Context, dst any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return nil
	}
	return decodeStrict(body, dst)
}

// readBody checks the Content-Type (when present: JSON) and reads the body, bounded by
// MaxBodyBytes.
func readBody(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, Public(ErrInvalidRequest, "The request body must be JSON (Content-Type: application/json).", err)
		}
	}
	if c.Request.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, Public(ErrInvalidRequest, bodyTooLargeDetail, err)
		}
		return nil, Public(ErrInvalidRequest, "The request body could not be read.", err)
	}
	return body, nil
}

// decodeStrict is bindJSON without the request: body rules and decoding.
func decodeStrict(body []byte, dst any) error {
	if len(body) > MaxBodyBytes {
		return Public(ErrInvalidRequest, bodyTooLargeDetail, nil)
	}
	if !utf8.Valid(body) {
		return Public(ErrInvalidRequest, "The request body is not valid UTF-8.", nil)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Public(ErrInvalidRequest, "The request body is empty; a JSON object is expected.", nil)
	}
	if trimmed[0] != '{' {
		return Public(ErrInvalidRequest, "The request body must be a JSON object.", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return Public(ErrInvalidRequest, decodeDetail(err), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Public(ErrInvalidRequest, "The request body has data after the JSON object.", err)
	}
	return nil
}

// decodeDetail explains a json decoding error without echoing the input.
func decodeDetail(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("The request body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("Field %q must be %s.", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return "The request body has a value of the wrong type."
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "The request body is truncated JSON."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The field name comes from the client, quoted by encoding/json; keep it short.
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if len(name) > 66 {
			name = name[:64] + `…"`
		}
		return "Unknown field " + strings.ToValidUTF8(name, "") + "."
	}
	return "The request body is not valid JSON."
}

// jsonKind names a Go kind as the JSON type a client would send.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}
