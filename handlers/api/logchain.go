package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/handlers/web"
)

// LogIntegrity is what the integrity routes read (API.md "Integrity of the log"): the public
// keys that sign the log's checkpoints and the checkpoints themselves. cmd/vigil/app gives
// the key ring and the backend's chain.
type LogIntegrity interface {
	Keys() []chain.KeyInfo
	Checkpoints(ctx context.Context, after uint64, limit int) ([]chain.Checkpoint, error)
}

// logRoutes: the log's signing keys (anyone: an outside auditor needs nothing else to check
// an export) and its signed checkpoints (the security teams and audit:read tokens).
func (s *API) logRoutes() []web.Route {
	tags := []string{"audit"}
	s.Doc.Define("LogKey", web.Object(map[string]web.Schema{
		"key_id": web.StringSchema(), "algorithm": {"type": "string", "enum": []string{"Ed25519"}},
		"public_key": {"type": "string", "description": "The 32 raw bytes of the Ed25519 public key, standard padded base64."},
		"created_at": {"type": "string", "format": "date-time"},
	}, "key_id", "algorithm", "public_key", "created_at"))
	s.Doc.Define("LogCheckpoint", web.Object(map[string]web.Schema{
		"position": web.IntegerSchema(),
		"hash":     {"type": "string", "description": "The chain hash of the event at position (64 lowercase hex digits)."},
		"time":     {"type": "string", "description": "When it was signed, exactly as signed (RFC 3339)."},
		"key_id":   web.StringSchema(),
		"signature": {"type": "string", "description": "Ed25519 over the UTF-8 bytes of " +
			"`vigil.checkpoint.v1\\n<position>\\n<hash>\\n<time>`, standard padded base64."},
	}, "position", "hash", "time", "key_id", "signature"))
	return []web.Route{
		{
			Method: http.MethodGet, Path: "/log/keys", Access: web.AccessPublic, Read: true,
			Op: web.Operation{
				ID: "listLogKeys", Summary: "The keys that sign the log's checkpoints", Tags: tags,
				Description: "Every key that signed or signs checkpoints, oldest first, the active one last " +
					"(`vigil log rotate-key` adds one and keeps the old ones listed). What `vigil verify --export F --public-key K` takes.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The keys.",
					Schema: web.Object(map[string]web.Schema{"keys": {"type": "array", "items": web.Ref("LogKey")}}, "keys")}},
			},
			Handler: func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"keys": s.logIntegrity.Keys()}) },
		},
		{
			Method: http.MethodGet, Path: "/log/checkpoints", Access: web.AccessAudit, Read: true, List: true,
			Op: web.Operation{
				ID: "listLogCheckpoints", Summary: "The log's signed checkpoints", Tags: tags,
				Description: "Checkpoints with a position after `after`, oldest first. next_cursor, when present, is the " +
					"position to pass as `after` (or `cursor`) for the next page.",
				Params: []web.Param{{Name: "after", In: "query", Description: "A global position; only checkpoints after it. Default 0. A cursor, when given, wins.",
					Schema: web.Schema{"type": "integer", "minimum": 0}}},
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of checkpoints.", Schema: web.ListSchema(web.Ref("LogCheckpoint"))}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusBadRequest, Text: "invalid_request: after or cursor is not a non-negative integer"}},
			Handler: web.List(s.Core, s.listLogCheckpoints),
		},
	}
}

func (s *API) listLogCheckpoints(r *web.Call[web.NoBody]) ([]chain.Checkpoint, string, error) {
	raw := r.C.Query("after")
	if r.Cursor != "" {
		raw = r.Cursor
	}
	var after uint64
	if raw != "" {
		var err error
		if after, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return nil, "", web.Public(web.ErrInvalidRequest, "after (or cursor) must be a non-negative integer (a global position).", err)
		}
	}
	cps, err := s.logIntegrity.Checkpoints(r.Ctx, after, r.Limit)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(cps) == r.Limit && len(cps) > 0 {
		next = strconv.FormatUint(cps[len(cps)-1].Position, 10)
	}
	return cps, next, nil
}
