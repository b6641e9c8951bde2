package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// openRaw opens a plain connection pool on a real SQLite file with the given busy timeout.
func openRaw(t *testing.T, path string, busyMS int) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyMS))
	q.Add("_pragma", "journal_mode(WAL)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestErrorCodeHelpersOnARealFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "codes.db")
	db := openRaw(t, path, 0)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (
		k TEXT PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL, c INTEGER CHECK (c > 0), a INTEGER, b INTEGER, UNIQUE (a, b))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO t (k, u, n, c, a, b) VALUES ('k1', 'u1', 'n', 1, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	insert := func(stmt string) error {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil {
			t.Fatalf("%s succeeded", stmt)
		}
		return err
	}
	for _, tc := range []struct {
		name   string
		err    error
		unique bool
	}{
		{"primary key", insert(`INSERT INTO t (k, u, n, c) VALUES ('k1', 'u2', 'n', 1)`), true},
		{"unique column", insert(`INSERT INTO t (k, u, n, c) VALUES ('k2', 'u1', 'n', 1)`), true},
		{"unique pair", insert(`INSERT INTO t (k, n, c, a, b) VALUES ('k3', 'n', 1, 1, 1)`), true},
		{"not null", insert(`INSERT INTO t (k, u, n, c) VALUES ('k4', 'u4', NULL, 1)`), false},
		{"check", insert(`INSERT INTO t (k, u, n, c) VALUES ('k5', 'u5', 'n', 0)`), false},
		{"no such table", insert(`INSERT INTO nope VALUES (1)`), false},
		{"syntax", insert(`INSERT INTO`), false},
	} {
		if got := isUniqueViolation(tc.err); got != tc.unique {
			code, _ := resultCode(tc.err)
			t.Errorf("%s: isUniqueViolation(%v) = %v (code %d)", tc.name, tc.err, got, code)
		}
		if got := isUniqueViolation(fmt.Errorf("wrapped: %w", tc.err)); got != tc.unique {
			t.Errorf("%s: wrapped: isUniqueViolation = %v", tc.name, got)
		}
		if isBusy(tc.err) {
			t.Errorf("%s: isBusy(%v)", tc.name, tc.err)
		}
	}
	// The words alone are not a SQLite error.
	for _, err := range []error{nil, errors.New("UNIQUE constraint failed: events.id"), errors.New("database is locked (SQLITE_BUSY)"), sql.ErrNoRows} {
		if isUniqueViolation(err) || isBusy(err) {
			t.Errorf("%v recognised", err)
		}
	}

	// Busy: another connection holds the write lock and this one does not wait.
	other := openRaw(t, path, 0)
	holder, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, busyErr := db.ExecContext(ctx, "BEGIN IMMEDIATE")
	if !isBusy(busyErr) || !isBusy(fmt.Errorf("begin: %w", busyErr)) {
		code, _ := resultCode(busyErr)
		t.Errorf("isBusy(%v) = false (code %d)", busyErr, code)
	}
	if isUniqueViolation(busyErr) {
		t.Errorf("busy taken for a conflict: %v", busyErr)
	}
	if _, err := holder.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

// A stored event id appended again (to any stream) is refused as an invalid event, not as a
// version conflict: the writer tells the two unique keys apart by looking the id up.
func TestAppendOfAStoredEventIDIsInvalid(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := domain.EventData{ID: domain.NewID(), Type: "X", SchemaVersion: 1, Data: []byte(`{}`)}
	if _, err := s.Append(ctx, "account-a", eventstore.NoStream, []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, "account-b", eventstore.NoStream, []domain.EventData{ev})
	if !errors.Is(err, eventstore.ErrInvalidEvent) || errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("duplicate id: %v", err)
	}
	// In the middle of a multi-event append, with the savepoint undoing the first insert.
	_, err = s.Append(ctx, "account-c", eventstore.NoStream, []domain.EventData{
		{ID: domain.NewID(), Type: "X", SchemaVersion: 1, Data: []byte(`{}`)}, ev})
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("duplicate id in a batch: %v", err)
	}
	if got, err := s.ReadStream(ctx, "account-c", 1, 10); err != nil || len(got) != 0 {
		t.Fatalf("account-c holds %d events (%v)", len(got), err)
	}
}

// TestPackedReaderRefusesWhatItCannotSplit: a packed value that does not split into the fields
// read is an error, never a panic or a silently short field; what follows them is the rest.
func TestPackedReaderRefusesWhatItCannotSplit(t *testing.T) {
	r := packedReader{p: "3:a:b0:\x00rest"}
	a, b := r.next(), r.next()
	if rest, err := r.rest(); err != nil || a != "a:b" || b != "" || rest != "\x00rest" {
		t.Fatalf("packedReader(3:a:b0:\\x00rest) = %q, %q, rest %q, %v", a, b, rest, err)
	}
	for _, p := range []string{"", "3:a:b", "4:a:b0:", ":a0:", "x:a0:", "-1:0:", "3a:b0:", "1234567890:x0:", "3:a:b0"} {
		r := packedReader{p: p}
		r.next()
		r.next()
		if _, err := r.rest(); !errors.Is(err, errPacked) {
			t.Errorf("packedReader(%q) = %v, want errPacked", p, err)
		}
	}
}

// hexString is hex.EncodeToString, for a chain hash (one allocation) and anything longer.
func TestHexStringIsHexEncodeToString(t *testing.T) {
	for _, raw := range []string{"", "\x00", strings.Repeat("\xab\x01", 16), strings.Repeat("z", 33), strings.Repeat("\xff", 100)} {
		if got, want := hexString(raw), hex.EncodeToString([]byte(raw)); got != want {
			t.Errorf("hexString(%q) = %q, want %q", raw, got, want)
		}
	}
	raw := strings.Repeat("\x5a", 32)
	if n := testing.AllocsPerRun(100, func() { _ = hexString(raw) }); n > 1 {
		t.Errorf("hexString of a 32-byte hash allocates %v times", n)
	}
}
