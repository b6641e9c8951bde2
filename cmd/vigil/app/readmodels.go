package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

	"github.com/vigil-auth/vigil/domain/command"
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
// read models are newer). It returns whether it installed the snapshot, with the in-memory
// indexes' state the snapshot carries (restoreIndexes). Errors are one line naming what is
// wrong.
func startFromSnapshot(ctx context.Context, cfg Config, store projections.LogInfo, ps []projections.Projection) (bool, []projections.IndexState, error) {
	rm := cfg.ReadModels
	has, err := projections.HasReadModels(ctx, cfg.DataDir)
	if err != nil {
		return false, nil, err
	}
	if has {
		cfg.Logger.Info("read models present in the data directory: the snapshot is not used", "read_models_from", redactURL(rm.From))
		return false, nil, nil
	}
	want, err := snapshotWant(ctx, store, ps)
	if err != nil {
		return false, nil, err
	}
	start := time.Now()
	var digest string
	info, path, err := projections.InstallSnapshot(ctx, cfg.DataDir, want, time.Now(), func(ctx context.Context, dst io.Writer) (string, error) {
		var err error
		if IsSnapshotURL(rm.From) {
			digest, err = downloadSnapshot(ctx, rm, dst)
			return digest, err
		}
		if digest, err = readDigestFile(rm.From + DigestSuffix); err != nil {
			return "", err
		}
		src, err := os.Open(rm.From)
		if err != nil {
			return "", err
		}
		defer src.Close()
		_, err = io.Copy(dst, src)
		return digest, err
	})
	if err != nil {
		return false, nil, err
	}
	checked := "its SHA-256 matches its producer's"
	if digest == "" {
		checked = "no SHA-256 from its producer (" + DigestSuffix + " file, Repr-Digest header): SQLite checked every page"
	}
	cfg.Logger.Info("read models installed from a snapshot; catching up from its checkpoint",
		"read_models_from", redactURL(rm.From), "file", path, "position", info.Position, "bytes", info.Size,
		"taken_at", info.CreatedAt, "checked", checked, "elapsed", time.Since(start))
	return true, info.Indexes, nil
}

// restoreIndexes puts the in-memory indexes' state of an installed snapshot into x and
// returns the log position the log feed goes on after. Without a usable state (a snapshot
// of an older format, an index format this binary does not read) it says so and returns 0:
// the feed reads the whole log, as without a snapshot (slower, never wrong).
func restoreIndexes(log *slog.Logger, states []projections.IndexState, x *command.LogIndexes) uint64 {
	if len(states) == 0 {
		log.Info("the snapshot holds no state of the in-memory indexes (a snapshot of an older format): the log feed reads the whole log")
		return 0
	}
	start := time.Now()
	pos := states[0].Position
	cs := make([]command.IndexState, 0, len(states))
	for _, st := range states {
		pos = min(pos, st.Position)
		cs = append(cs, command.IndexState{Name: st.Name, Format: st.Format, State: st.State})
	}
	if err := x.RestoreStates(cs); err != nil {
		log.Warn("cannot use the kept state of the in-memory indexes: the log feed reads the whole log", "err", err.Error())
		return 0
	}
	log.Info("in-memory indexes restored; the log feed reads the log after their position",
		"position", pos, "sessions", x.Sessions.Len(), "elapsed", time.Since(start))
	return pos
}

// indexStates is the state of the instance's in-memory indexes for a snapshot: the position
// the log feed has applied, taken before the indexes are encoded (they may hold later
// events, which a restored instance's feed applies again, harmlessly).
func indexStates(pos uint64, x *command.LogIndexes) ([]projections.IndexState, error) {
	cs, err := x.MarshalStates()
	if err != nil {
		return nil, err
	}
	out := make([]projections.IndexState, 0, len(cs))
	for _, c := range cs {
		out = append(out, projections.IndexState{Name: c.Name, Position: pos, Format: c.Format, State: c.State})
	}
	return out, nil
}

// buildIndexStates builds the in-memory indexes away from a server, by reading the whole log
// (`vigil projections snapshot`: the cost is the producer's, so that the new instance does
// not pay it), and returns their state at the log's end.
func buildIndexStates(ctx context.Context, store eventstore.Store) ([]projections.IndexState, error) {
	x := command.NewLogIndexes()
	var pos uint64
	for {
		evs, err := store.ReadAll(ctx, pos, 5000)
		if err != nil {
			return nil, fmt.Errorf("read the log after %d: %w", pos, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			_ = x.Apply(ev) // as the log feed: an event an index cannot take is skipped by it
		}
		pos = evs[len(evs)-1].Position
	}
	x.PruneTombstones(time.Now())
	return indexStates(pos, x)
}

// DigestSuffix names the file beside a snapshot file that holds its SHA-256 (as sha256sum
// writes it), written by `vigil projections snapshot`.
const DigestSuffix = ".sha256"

// readDigestFile reads the hex SHA-256 of a digest file ("" when there is none).
func readDigestFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f[0]) != 64 {
		return "", fmt.Errorf("%s: not a SHA-256 (%s)", path, "64 hex digits first")
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", fmt.Errorf("%s: not a SHA-256: %v", path, err)
	}
	return strings.ToLower(f[0]), nil
}

// writeDigestFile writes sum as the digest file of the snapshot out (0600, replaced whole).
func writeDigestFile(out, sum string) error {
	tmp := out + DigestSuffix + ".partial"
	if err := os.WriteFile(tmp, []byte(sum+"  "+filepath.Base(out)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, out+DigestSuffix)
}

// parseReprDigest returns the hex SHA-256 of a Repr-Digest field ("" without a sha-256).
func parseReprDigest(field string) string {
	for _, m := range strings.Split(field, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "sha-256") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(v[1 : len(v)-1])
		if err == nil && len(raw) == sha256.Size {
			return hex.EncodeToString(raw)
		}
	}
	return ""
}

// downloadSnapshot fetches rm.From with rm.Token into dst, and returns the SHA-256 its
// Repr-Digest header gives ("" without one).
func downloadSnapshot(ctx context.Context, rm ReadModelsConfig, dst io.Writer) (string, error) {
	client := rm.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Minute
		client = &http.Client{Transport: tr}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rm.From, nil)
	if err != nil {
		return "", err
	}
	if rm.Token != "" {
		req.Header.Set("Authorization", "Bearer "+rm.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", redactURL(rm.From), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		detail := strings.Join(strings.Fields(string(body)), " ")
		if len(detail) > 300 {
			detail = detail[:300] + "..."
		}
		return "", fmt.Errorf("GET %s: %s: %s", redactURL(rm.From), resp.Status, detail)
	}
	n, err := io.Copy(dst, resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", redactURL(rm.From), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", fmt.Errorf("GET %s: %d of %d bytes", redactURL(rm.From), n, resp.ContentLength)
	}
	return parseReprDigest(resp.Header.Get("Repr-Digest")), nil
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
	raw, err := openStore(ctx, cfg)
	if err != nil {
		return projections.SnapshotInfo{}, err
	}
	// The indexes are built from the log as a server reads it: through the sealing.
	key, err := serverKey(cfg, false, cfg.Logger)
	if err != nil {
		raw.Close()
		return projections.SnapshotInfo{}, err
	}
	store, _, err := sealLog(ctx, cfg, raw, key)
	if err != nil {
		raw.Close()
		return projections.SnapshotInfo{}, err
	}
	defer store.Close()
	logID, err := projections.LogID(ctx, store)
	if err != nil {
		return projections.SnapshotInfo{}, err
	}
	indexes, err := buildIndexStates(ctx, store)
	if err != nil {
		return projections.SnapshotInfo{}, fmt.Errorf("in-memory indexes: %w", err)
	}
	info, err := projections.WriteSnapshotOf(ctx, path, out, projections.Builtin(), logID, time.Now(), indexes...)
	if err != nil {
		return info, err
	}
	// The digest beside it lets the instance that installs it skip SQLite's page-by-page check.
	if err := writeDigestFile(out, info.SHA256); err != nil {
		return info, fmt.Errorf("%s%s: %w", out, DigestSuffix, err)
	}
	return info, nil
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
	// indexes returns the state of the instance's in-memory indexes (App.indexStates).
	indexes func() ([]projections.IndexState, error)
	mu      sync.Mutex
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
	var indexes []projections.IndexState
	if s.indexes != nil {
		if indexes, err = s.indexes(); err != nil {
			return nil, projections.SnapshotInfo{}, nil, fmt.Errorf("in-memory indexes: %w", err)
		}
	}
	info, err := s.db.WriteSnapshot(ctx, out, s.ps, logID, now, indexes...)
	if err != nil {
		return nil, projections.SnapshotInfo{}, nil, err
	}
	f, err := os.Open(out)
	if err != nil {
		os.Remove(out)
		return nil, projections.SnapshotInfo{}, nil, err
	}
	s.log.Info("read-model snapshot written for a download", "position", info.Position, "bytes", info.Size, "indexes_at", indexPosition(indexes))
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

// indexPosition is the position of the indexes' state (0: none).
func indexPosition(states []projections.IndexState) uint64 {
	if len(states) == 0 {
		return 0
	}
	return states[0].Position
}

// indexStates is the snapshotter's indexes: the state of this instance's in-memory indexes at
// the log feed's position.
func (a *App) indexStates() ([]projections.IndexState, error) {
	return indexStates(a.feedPos.position(), a.svc.LogIndexes(a.tokens.Index()))
}

var _ = errors.New

// keptIndexStates takes the in-memory indexes' state this instance's last clean stop kept in
// its read models (keepIndexStates). A state past the log's head (a log replaced under the
// read models) or unreadable is not used: the log feed then reads the whole log.
func (a *App) keptIndexStates(ctx context.Context) []projections.IndexState {
	states, err := a.pdb.TakeIndexStates(ctx)
	if err != nil {
		a.log.Warn("cannot read the in-memory indexes' state kept at the last stop: the log feed reads the whole log", "err", err.Error())
		return nil
	}
	if len(states) == 0 {
		return nil
	}
	head, err := a.store.Head(ctx)
	if pos := indexPosition(states); err != nil || pos > head {
		a.log.Warn("the in-memory indexes' state kept at the last stop does not fit the log: the log feed reads the whole log", "position", pos, "head", head)
		return nil
	}
	return states
}

// keepIndexStates keeps the in-memory indexes' state in the read models at a clean stop (the
// log feed stopped), so that the next start of this instance restores it instead of reading
// the whole log. A failure only costs that next start the time of the read.
func (a *App) keepIndexStates() {
	states, err := a.indexStates()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		err = a.pdb.SaveIndexStates(ctx, states)
		cancel()
	}
	if err != nil {
		a.log.Warn("cannot keep the in-memory indexes' state for the next start", "err", err.Error())
		return
	}
	a.log.Info("in-memory indexes kept for the next start", "position", indexPosition(states))
}
