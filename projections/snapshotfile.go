package projections

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Read-model snapshots (API.md "Running", --read-models-from): a consistent copy of the read
// models with their checkpoints, in one SQLite file, that a new instance starts from instead
// of building everything from the log. The file carries a table naming what it was made
// from, so that it is only ever used where its rows mean what the reader expects:
//
//   - the schema version of the read models (ReadModelVersion and the projections' DDL), and
//   - the log it was built from (the id of the log's first event).
//
// Aggregate snapshots (the snapshots table) are a cache of the command side holding password
// hashes and sealed secrets; a read-model snapshot leaves them out (the next load of each
// account writes a new one).

// ReadModelVersion is bumped whenever a reducer changes what it writes into an unchanged
// schema, so that a snapshot taken by an older binary is refused. Changes of the DDL change
// the schema version by themselves (SchemaVersion hashes it).
const ReadModelVersion = 1

// snapshotMetaTable names the table a snapshot file describes itself in.
const snapshotMetaTable = "read_model_snapshot"

// ErrNotSnapshot is returned by CheckSnapshot for a file that is not a complete read-model
// snapshot (not SQLite, truncated, damaged, or without the description table).
var ErrNotSnapshot = errors.New("not a complete Vigil read-model snapshot")

// SchemaVersion identifies the read models of ps: ReadModelVersion and a digest of the
// projections' names and DDL, e.g. "1-3fa4c2d1e0b9a877". Two binaries with the same schema
// version build the same tables with the same meaning.
func SchemaVersion(ps []Projection) string {
	h := sha256.New()
	for _, p := range ps {
		io.WriteString(h, p.Name())
		h.Write([]byte{0})
		for _, stmt := range p.Schema() {
			io.WriteString(h, strings.Join(strings.Fields(stmt), " "))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return strconv.Itoa(ReadModelVersion) + "-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// LogID identifies a log: the id of its first event, "" while it is empty.
func LogID(ctx context.Context, log LogInfo) (string, error) {
	evs, err := log.ReadAll(ctx, 0, 1)
	if err != nil {
		return "", fmt.Errorf("projections: read the log's first event: %w", err)
	}
	if len(evs) == 0 {
		return "", nil
	}
	return evs[0].ID, nil
}

// indexStateTable holds, in a snapshot, the state of the in-memory indexes of the instance
// it was taken from (sessions, organisations, delegations, service tokens: what whoami and
// sign-in answer from), so that a new instance restores them and reads the log only after
// their position instead of from its start. One row per part of at most indexStatePart
// bytes of each index's state.
const indexStateTable = "log_feed_state"

// indexStatePart bounds the blob of one row of indexStateTable (SQLite's limit is 1 GB).
const indexStatePart = 32 << 20

// IndexState is the state of one of an instance's in-memory indexes as the log feed had
// filled it up to Position (it may hold some later events too: those are applied again,
// harmlessly), in its own encoding Format (the reader checks it).
type IndexState struct {
	Name     string
	Position uint64
	Format   int
	State    []byte
}

// SnapshotInfo describes a read-model snapshot.
type SnapshotInfo struct {
	SchemaVersion string
	LogID         string
	// Checkpoints holds each projection's checkpoint; Position is the lowest of them (where
	// catching up starts).
	Checkpoints map[string]uint64
	Position    uint64
	CreatedAt   time.Time
	Size        int64 // bytes
	// SHA256 is the hex SHA-256 of the snapshot file as written (WriteSnapshot): a copy whose
	// digest matches needs no page-by-page check at install (InstallSnapshot).
	SHA256 string
	// Indexes holds the in-memory indexes' state the snapshot carries (none: a snapshot of an
	// older format, or one written without them). CheckSnapshot leaves it empty;
	// WriteSnapshot fills it with what it wrote, InstallSnapshot with what it read (and
	// removes the state from the installed file).
	Indexes []IndexState
}

// WriteSnapshot writes a consistent copy of db's read models and checkpoints to out (which
// must not exist; it is written beside out first and renamed when complete and synced),
// describing it with the schema version of ps and logID. It runs in one read transaction
// (VACUUM INTO on a connection of its own): the runner keeps committing meanwhile, and the
// copy holds exactly the batches committed when it started. indexes, when given, are stored
// beside the read models (see IndexState).
func (db *DB) WriteSnapshot(ctx context.Context, out string, ps []Projection, logID string, now time.Time, indexes ...IndexState) (SnapshotInfo, error) {
	return WriteSnapshotOf(ctx, db.Path(), out, ps, logID, now, indexes...)
}

// WriteSnapshotOf is DB.WriteSnapshot of the read-model file at path (one a server may be
// using meanwhile).
func WriteSnapshotOf(ctx context.Context, path, out string, ps []Projection, logID string, now time.Time, indexes ...IndexState) (SnapshotInfo, error) {
	fail := func(err error) (SnapshotInfo, error) {
		return SnapshotInfo{}, fmt.Errorf("projections: snapshot: %w", err)
	}
	if _, err := os.Stat(out); err == nil {
		return fail(fmt.Errorf("%s already exists", out))
	}
	tmp := out + ".partial-" + strconv.FormatInt(now.UnixNano(), 10)
	defer os.Remove(tmp)
	src, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return fail(err)
	}
	src.SetMaxOpenConns(1)
	_, err = src.ExecContext(ctx, `VACUUM INTO ?`, tmp)
	src.Close()
	if err != nil {
		return fail(fmt.Errorf("copy %s: %w", path, err))
	}
	// Personal data in clear, like the read models: for the owner only.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	info := SnapshotInfo{SchemaVersion: SchemaVersion(ps), LogID: logID, CreatedAt: now.UTC()}
	if err := describeSnapshot(ctx, tmp, &info, indexes); err != nil {
		return fail(err)
	}
	if missing := missingCheckpoints(ps, info.Checkpoints); len(missing) > 0 {
		// Read models another version of Vigil wrote (or a rebuild never finished): the copy
		// would carry this binary's schema version, and an instance installing it would
		// rebuild those projections from the log's start.
		return fail(fmt.Errorf("the read models at %s have no checkpoint for %s: they were not written by this version of Vigil (run `vigil projections rebuild` first)",
			path, strings.Join(missing, ", ")))
	}
	if err := syncFile(tmp); err != nil {
		return fail(err)
	}
	if info.SHA256, err = fileSHA256(tmp); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, out); err != nil { // fails when out appeared meanwhile
		return fail(err)
	}
	if err := syncFile(filepath.Dir(out)); err != nil {
		return fail(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return fail(err)
	}
	info.Size, info.Indexes = fi.Size(), indexes
	return info, nil
}

// missingCheckpoints names the projections of ps without a checkpoint in cps, when some
// projection has one: every projection's runner commits a checkpoint with its first batch,
// so on a log with events a missing one means read models of another schema (an empty log's
// read models have none at all).
func missingCheckpoints(ps []Projection, cps map[string]uint64) []string {
	if len(cps) == 0 {
		return nil
	}
	var missing []string
	for _, p := range ps {
		if _, ok := cps[p.Name()]; !ok {
			missing = append(missing, p.Name())
		}
	}
	return missing
}

// describeSnapshot drops the aggregate snapshots from the copy at path, adds the description
// table and the indexes' state, and fills info's checkpoints from the copy.
func describeSnapshot(ctx context.Context, path string, info *SnapshotInfo, indexes []IndexState) error {
	f, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+
		"?_pragma=secure_delete(1)&_pragma=journal_mode(DELETE)&_pragma=synchronous(FULL)")
	if err != nil {
		return err
	}
	defer f.Close()
	f.SetMaxOpenConns(1)
	tx, err := f.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmts := []string{
		`DELETE FROM snapshots`,
		`CREATE TABLE ` + snapshotMetaTable + ` (
			schema_version TEXT NOT NULL,
			log_id         TEXT NOT NULL,
			created_at     INTEGER NOT NULL -- Unix nanoseconds
		)`,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+snapshotMetaTable+` (schema_version, log_id, created_at) VALUES (?, ?, ?)`,
		info.SchemaVersion, info.LogID, info.CreatedAt.UnixNano()); err != nil {
		return err
	}
	if err := replaceIndexStates(ctx, tx, indexes); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	info.Checkpoints, info.Position, err = readCheckpoints(ctx, f)
	if err != nil {
		return err
	}
	return f.Close()
}

// readCheckpoints reads every checkpoint of a read-model file and the lowest one.
func readCheckpoints(ctx context.Context, q *sql.DB) (map[string]uint64, uint64, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, position FROM checkpoints`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	cps := map[string]uint64{}
	var low uint64
	for rows.Next() {
		var (
			name string
			pos  uint64
		)
		if err := rows.Scan(&name, &pos); err != nil {
			return nil, 0, err
		}
		if len(cps) == 0 || pos < low {
			low = pos
		}
		cps[name] = pos
	}
	return cps, low, rows.Err()
}

// SnapshotWant is what CheckSnapshot requires of a snapshot.
type SnapshotWant struct {
	SchemaVersion string // SchemaVersion of the projections the server runs
	LogID         string // LogID of the server's log
}

// fileSHA256 is the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckSnapshot checks that the file at path is a complete read-model snapshot (SQLite, as
// long as its header says, passing SQLite's quick_check, described) made with want's schema
// version from want's log, and describes it. Its errors are one line, saying what to do.
func CheckSnapshot(ctx context.Context, path string, want SnapshotWant) (SnapshotInfo, error) {
	return checkSnapshot(ctx, path, want, true)
}

// checkSnapshot is CheckSnapshot; without quick, SQLite's quick_check (which reads every page:
// tens of seconds for a snapshot of GBs) is left out: for a file whose SHA-256 matched the
// producer's.
func checkSnapshot(ctx context.Context, path string, want SnapshotWant, quick bool) (SnapshotInfo, error) {
	size, err := checkSQLiteHeader(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	f, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: %v", ErrNotSnapshot, err)
	}
	defer f.Close()
	f.SetMaxOpenConns(1)
	if quick {
		var check string
		if err := f.QueryRowContext(ctx, `PRAGMA quick_check(1)`).Scan(&check); err != nil {
			return SnapshotInfo{}, fmt.Errorf("%w: %v", ErrNotSnapshot, err)
		}
		if check != "ok" {
			return SnapshotInfo{}, fmt.Errorf("%w: SQLite's check fails: %s", ErrNotSnapshot, check)
		}
	}
	info := SnapshotInfo{Size: size}
	var created int64
	err = f.QueryRowContext(ctx, `SELECT schema_version, log_id, created_at FROM `+snapshotMetaTable).
		Scan(&info.SchemaVersion, &info.LogID, &created)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: it does not describe itself (%v)", ErrNotSnapshot, err)
	}
	info.CreatedAt = time.Unix(0, created).UTC()
	if info.SchemaVersion != want.SchemaVersion {
		return SnapshotInfo{}, fmt.Errorf("the snapshot's read-model schema version is %s, this server's %s: take a snapshot with this version of Vigil (vigil projections snapshot), or start without one", info.SchemaVersion, want.SchemaVersion)
	}
	if info.LogID != want.LogID {
		return SnapshotInfo{}, fmt.Errorf("the snapshot was made from another log (first event %q, this log's %q): take it from an instance of this deployment, or start without one", info.LogID, want.LogID)
	}
	if info.Checkpoints, info.Position, err = readCheckpoints(ctx, f); err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: %v", ErrNotSnapshot, err)
	}
	return info, nil
}

// checkSQLiteHeader checks that path starts with an SQLite header and holds every page the
// header counts (a truncated copy does not), returning its size.
func checkSQLiteHeader(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("%w: too short for an SQLite file", ErrNotSnapshot)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("%w: not an SQLite file", ErrNotSnapshot)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// The page count is valid when the version-valid-for number matches the change counter.
	if binary.BigEndian.Uint32(h[92:96]) == binary.BigEndian.Uint32(h[24:28]) && fi.Size() < pages*pageSize {
		return 0, fmt.Errorf("%w: truncated (%d of %d bytes)", ErrNotSnapshot, fi.Size(), pages*pageSize)
	}
	return fi.Size(), nil
}

// InstallSnapshot makes a snapshot the read models of the data directory dir: fetch writes
// the snapshot into dst (a fresh read-model file in dir) and returns the snapshot's SHA-256
// as its producer gave it (hex; "" when unknown). The file is synced and checked
// (CheckSnapshot with want; when the digest of what fetch wrote matches the producer's, the
// file is the one the producer wrote and SQLite's page-by-page quick_check, whose time grows
// with the file, is left out; a digest that does not match is refused), and the directory's
// pointer moved to it. The previous current file is left for RemoveStale. On any error the
// new file is removed and the directory is unchanged. It takes the rebuild lock
// (ErrRebuildRunning).
func InstallSnapshot(ctx context.Context, dir string, want SnapshotWant, now time.Time, fetch func(ctx context.Context, dst io.Writer) (string, error)) (SnapshotInfo, string, error) {
	unlock, err := lockRebuild(dir, true)
	if err != nil {
		return SnapshotInfo{}, "", err
	}
	defer unlock()
	name := rebuiltPrefix + strconv.FormatInt(now.UnixNano(), 10) + ".db"
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return SnapshotInfo{}, "", err
	}
	h := sha256.New()
	wantSum, err := fetch(ctx, io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		RemoveFile(path)
		return SnapshotInfo{}, "", err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if wantSum != "" && !strings.EqualFold(wantSum, got) {
		RemoveFile(path)
		return SnapshotInfo{}, "", fmt.Errorf("%w: damaged: its SHA-256 is %s, its producer's %s", ErrNotSnapshot, got, strings.ToLower(wantSum))
	}
	info, err := checkSnapshot(ctx, path, want, wantSum == "")
	if err != nil {
		RemoveFile(path)
		return SnapshotInfo{}, "", err
	}
	info.SHA256 = got
	if info.Indexes, err = takeIndexStates(ctx, path); err != nil {
		RemoveFile(path)
		return SnapshotInfo{}, "", fmt.Errorf("%w: index state: %v", ErrNotSnapshot, err)
	}
	if err := writePointer(dir, name); err != nil {
		RemoveFile(path)
		return SnapshotInfo{}, "", err
	}
	return info, path, nil
}

// takeIndexStates reads the indexes' state of the snapshot at path (none when the snapshot
// has no such table: an older format) and drops it from the file, which becomes a read-model
// file (the state is the instance's, not the read models'; a later snapshot writes its own).
func takeIndexStates(ctx context.Context, path string) ([]IndexState, error) {
	f, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=journal_mode(DELETE)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	f.SetMaxOpenConns(1)
	out, err := takeIndexStatesFrom(ctx, f)
	if err != nil {
		return nil, err
	}
	return out, f.Close()
}

// HasReadModels reports whether the current read-model file of dir exists and holds a
// checkpoint past 0 (a server has applied events to it).
func HasReadModels(ctx context.Context, dir string) (bool, error) {
	path, err := CurrentPath(dir)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	f, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return false, err
	}
	defer f.Close()
	var n int
	err = f.QueryRowContext(ctx, `SELECT count(*) FROM checkpoints WHERE position > 0`).Scan(&n)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return false, nil
		}
		return false, fmt.Errorf("projections: %s: %w", path, err)
	}
	return n > 0, nil
}

// indexStateDDL creates indexStateTable.
const indexStateDDL = `CREATE TABLE ` + indexStateTable + ` (
	name     TEXT NOT NULL,
	part     INTEGER NOT NULL,
	position INTEGER NOT NULL,
	format   INTEGER NOT NULL,
	state    BLOB NOT NULL,
	PRIMARY KEY (name, part)
)`

// replaceIndexStates makes indexStateTable hold states (and nothing else), each in parts of
// indexStatePart.
func replaceIndexStates(ctx context.Context, tx *sql.Tx, states []IndexState) error {
	for _, q := range []string{`DROP TABLE IF EXISTS ` + indexStateTable, indexStateDDL} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	for _, ix := range states {
		for part, off := 0, 0; part == 0 || off < len(ix.State); part, off = part+1, off+indexStatePart {
			blob := ix.State[off:min(off+indexStatePart, len(ix.State))]
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+indexStateTable+` (name, part, position, format, state) VALUES (?, ?, ?, ?, ?)`,
				ix.Name, part, ix.Position, ix.Format, blob); err != nil {
				return fmt.Errorf("index state %s: %w", ix.Name, err)
			}
		}
	}
	return nil
}

// readIndexStates reads indexStateTable, joining each state's parts.
func readIndexStates(ctx context.Context, q sqlConn) ([]IndexState, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, part, position, format, state FROM `+indexStateTable+` ORDER BY name, part`)
	if err != nil {
		return nil, err
	}
	var (
		out   []IndexState
		parts int // of the last state in out
	)
	for rows.Next() {
		var (
			st   IndexState
			part int
		)
		if err := rows.Scan(&st.Name, &part, &st.Position, &st.Format, &st.State); err != nil {
			rows.Close()
			return nil, err
		}
		if l := len(out); l > 0 && out[l-1].Name == st.Name {
			if part != parts || out[l-1].Position != st.Position || out[l-1].Format != st.Format {
				rows.Close()
				return nil, fmt.Errorf("%s: part %d does not continue the state", st.Name, part)
			}
			out[l-1].State = append(out[l-1].State, st.State...)
			parts++
			continue
		}
		if part != 0 {
			rows.Close()
			return nil, fmt.Errorf("%s: starts at part %d", st.Name, part)
		}
		parts = 1
		out = append(out, st)
	}
	rows.Close()
	return out, rows.Err()
}

// SaveIndexStates keeps the state of this instance's in-memory indexes in its read-model file,
// replacing what was kept before, for its next start (TakeIndexStates): a clean stop writes
// it, so that a restart need not read the whole log into the indexes. The file runs with
// secure_delete, so a replaced state leaves no bytes behind.
func (db *DB) SaveIndexStates(ctx context.Context, states []IndexState) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projections: save index state: %w", err)
	}
	defer tx.Rollback()
	if err := replaceIndexStates(ctx, tx, states); err != nil {
		return fmt.Errorf("projections: save index state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projections: save index state: %w", err)
	}
	return nil
}

// TakeIndexStates returns the state SaveIndexStates kept (none when nothing was kept) and
// removes it from the file: it serves one start only, so that a crash later leaves none (the
// next start then reads the whole log: slower, never stale) and personal data in it (the
// sessions' addresses) does not outlive the run that took it.
func (db *DB) TakeIndexStates(ctx context.Context) ([]IndexState, error) {
	out, err := takeIndexStatesFrom(ctx, db.write)
	if err != nil {
		return nil, fmt.Errorf("projections: take index state: %w", err)
	}
	return out, nil
}

// sqlConn is what takeIndexStatesFrom needs of a database: a *sql.DB, a *sql.Tx or the read
// models' write pool.
type sqlConn interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// takeIndexStatesFrom reads indexStateTable of q (none when q has no such table) and drops it.
func takeIndexStatesFrom(ctx context.Context, q sqlConn) ([]IndexState, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, indexStateTable).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out, err := readIndexStates(ctx, q)
	if err != nil {
		return nil, err
	}
	if _, err := q.ExecContext(ctx, `DROP TABLE `+indexStateTable); err != nil {
		return nil, err
	}
	return out, nil
}
