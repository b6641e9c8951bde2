package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// ReadModelSnapshots writes read-model snapshots for GET /admin/read-models/snapshot
// (API.md "Running", --read-models-from). WriteSnapshot returns the open snapshot file, its
// description, and a function that closes and removes it once served.
type ReadModelSnapshots interface {
	WriteSnapshot(ctx context.Context) (*os.File, projections.SnapshotInfo, func(), error)
}

// SnapshotContentType is the media type of a read-model snapshot (an SQLite database file).
const SnapshotContentType = "application/vnd.sqlite3"

// readModelRoutes: the read-model snapshot another instance starts from.
func (s *API) readModelRoutes() []web.Route {
	return []web.Route{{
		Method: http.MethodGet, Path: "/admin/read-models/snapshot", Access: web.AccessAdmin,
		Op: web.Operation{
			ID: "getReadModelSnapshot", Summary: "A snapshot of the read models", Tags: []string{"administration"},
			Description: "A consistent copy of this instance's read models with their checkpoints, as one SQLite file " +
				"(what `vigil projections snapshot --out F` writes): a new instance of the same deployment started with " +
				"`--read-models-from` and this URL (with an admin's session token) begins from it and catches up from its " +
				"checkpoint instead of reading the whole log. It holds personal data in clear, like the read models.",
			Responses: map[int]web.Response{http.StatusOK: {
				Description: "The snapshot.", ContentType: SnapshotContentType,
				Schema: web.Schema{"type": "string", "format": "binary"},
				Headers: map[string]string{
					"X-Vigil-Read-Models-Schema":   "The read models' schema version (a server refuses a snapshot of another one)",
					"X-Vigil-Read-Models-Position": "The lowest checkpoint in the snapshot: where a server starting from it catches up",
					"Repr-Digest":                  "The SHA-256 of the snapshot (RFC 9530, `sha-256=:base64:`): a server whose download matches it skips SQLite's page-by-page check",
				},
			}},
		},
		Handler: s.readModelSnapshot,
	}}
}

func (s *API) readModelSnapshot(c *gin.Context) {
	f, info, done, err := s.snapshots.WriteSnapshot(c.Request.Context())
	if err != nil {
		web.WriteError(c, err)
		return
	}
	defer done()
	h := c.Writer.Header()
	h.Set("Content-Type", SnapshotContentType)
	h.Set("Content-Disposition", `attachment; filename="vigil-read-models.db"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Vigil-Read-Models-Schema", info.SchemaVersion)
	h.Set("X-Vigil-Read-Models-Position", strconv.FormatUint(info.Position, 10))
	if raw, err := hex.DecodeString(info.SHA256); err == nil && len(raw) == sha256.Size {
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	}
	http.ServeContent(c.Writer, c.Request, "", info.CreatedAt, f)
}
