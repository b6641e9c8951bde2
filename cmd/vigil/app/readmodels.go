package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/projections"
)

// Read-model snapshots (API.md "Running", --read-models-from): `vigil projections snapshot`
// and GET /api/v1/admin/read-models/snapshot write one (projections.WriteSnapshot); a server
// started with ReadModelsFrom installs one before it opens its read models
// (projections.InstallSnapshot), and its runner catches up from the snapshot's checkpoints.

// ReadModelsConfig configures the start from a read-model snapshot.
type ReadModelsConfig struct {
	// From is a snapshot file or an http(s) URL of another instance's
	// GET /api/v1/admin/read-models/snapshot; empty: none.
	From string
	// Token is the bearer token (an admin's session) the URL is fetched with.
	Token string
	// Client fetches the URL; default a client without an overall timeout (a snapshot may
	// be large) that gives up when no answer starts within a minute.
	Client *http.Client
}

// IsSnapshotURL reports whether from names an http(s) URL rather than a file.
func IsSnapshotURL(from string) bool {
	l := strings.ToLower(from)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// snapshotWant is what a snapshot must match to serve this server: its projections' schema
// version and its log.
func snapshotWant(ctx context.Context, store projections.LogInfo, ps []projections.Projection) (projections.SnapshotWant, error) {
	id, err := projections.LogID(ctx, store)
	if err != nil {
		return projections.SnapshotWant{}, err
	}
	return projections.SnapshotWant{SchemaVersion: projections.SchemaVersion(ps), LogID: id}, nil
}

// startFromSnapshot installs cfg.ReadModels.From as the read models of cfg.DataDir, unless the
// directory already has read models (a restart of an instance that started from one: its own
// read models are newer). Errors are one line naming what is wrong.
func startFromSnapshot(ctx context.Context, cfg Config, store projections.LogInfo, ps []projections.Projection) error {
	rm := cfg.ReadModels
	has, err := projections.HasReadModels(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	if has {
		cfg.Logger.Info("read models present in the data directory: the snapshot is not used", "read_models_from", redactURL(rm.From))
		return nil
	}
	want, err := snapshotWant(ctx, store, ps)
	if err != nil {
		return err
	}
	start := time.Now()
	info, path, err := projections.InstallSnapshot(ctx, cfg.DataDir, want, time.Now(), func(ctx context.Context, dst *os.File) error {
		if IsSnapshotURL(rm.From) {
			return downloadSnapshot(ctx, rm, dst)
		}
		src, err := os.Open(rm.From)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(dst, src)
		return err
	})
	if err != nil {
		return err
	}
	cfg.Logger.Info("read models installed from a snapshot; catching up from its checkpoint",
		"read_models_from", redactURL(rm.From), "file", path, "position", info.Position, "bytes", info.Size,
		"taken_at", info.CreatedAt, "elapsed", time.Since(start))
	return nil
}

// downloadSnapshot fetches rm.From with rm.Token into dst.
func downloadSnapshot(ctx context.Context, rm ReadModelsConfig, dst io.Writer) error {
	client := rm.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Minute
		client = &http.Client{Transport: tr}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rm.From, nil)
	if err != nil {
		return err
	}
	if rm.Token != "" {
		req.Header.Set("Authorization", "Bearer "+rm.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redactURL(rm.From), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		detail := strings.Join(strings.Fields(string(body)), " ")
		if len(detail) > 300 {
			detail = detail[:300] + "..."
		}
		return fmt.Errorf("GET %s: %s: %s", redactURL(rm.From), resp.Status, detail)
	}
	n, err := io.Copy(dst, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redactURL(rm.From), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("GET %s: %d of %d bytes", redactURL(rm.From), n, resp.ContentLength)
	}
	return nil
}

// redactURL drops credentials and the query from a URL for logs and errors (a file name is
// returned as it is).
func redactURL(s string) string {
	if !IsSnapshotURL(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Snapshot writes a snapshot of the read models of cfg.DataDir to out (`vigil projections
// snapshot`); a server may be running on the directory meanwhile.
func Snapshot(ctx context.Context, cfg Config, out string) (projections.SnapshotInfo, error) {
	if err := cfg.fill(); err != nil {
		return projections.SnapshotInfo{}, err
	}
	path, err := projections.CurrentPath(cfg.DataDir)
	if err != nil {
		return projections.SnapshotInfo{}, fmt.Errorf("--data-dir: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return projections.SnapshotInfo{}, fmt.Errorf("--data-dir: no read models to snapshot (%s): start a server on it or run vigil projections rebuild first", path)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return projections.SnapshotInfo{}, err
	}
	defer store.Close()
	logID, err := projections.LogID(ctx, store)
	if err != nil {
		return projections.SnapshotInfo{}, err
	}
	return projections.WriteSnapshotOf(ctx, path, out, projections.Builtin(), logID, time.Now())
}

// snapshotter serves GET /api/v1/admin/read-models/snapshot (handlers/api.ReadModelSnapshots):
// one snapshot at a time, written into the data directory (it holds personal data: the
// directory is 0700) and removed once served.
type snapshotter struct {
	dir   string
	db    *projections.DB
	store eventstore.Store
	ps    []projections.Projection
	log   *slog.Logger
	mu    sync.Mutex
}

// WriteSnapshot writes a snapshot into a temporary file of the data directory and returns it
// with a function that removes it.
func (s *snapshotter) WriteSnapshot(ctx context.Context) (*os.File, projections.SnapshotInfo, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	logID, err := projections.LogID(ctx, s.store)
	if err != nil {
		return nil, projections.SnapshotInfo{}, nil, err
	}
	now := time.Now()
	out := filepath.Join(s.dir, snapshotServingPrefix+strconv.FormatInt(now.UnixNano(), 10)+".db")
	info, err := s.db.WriteSnapshot(ctx, out, s.ps, logID, now)
	if err != nil {
		return nil, projections.SnapshotInfo{}, nil, err
	}
	f, err := os.Open(out)
	if err != nil {
		os.Remove(out)
		return nil, projections.SnapshotInfo{}, nil, err
	}
	s.log.Info("read-model snapshot written for a download", "position", info.Position, "bytes", info.Size)
	return f, info, func() { f.Close(); os.Remove(out) }, nil
}

// snapshotServingPrefix starts the names of the snapshots being served; removeServedSnapshots
// removes those a crash left.
const snapshotServingPrefix = "read-models-snapshot-"

// removeServedSnapshots removes the snapshot files a stopped server was serving.
func removeServedSnapshots(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), snapshotServingPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

var _ = errors.New
