package rawsqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/vigil-auth/vigil/eventstore/sqlite/rawsqlite"
)

func open(t *testing.T) (*sql.Conn, func(func(*rawsqlite.Conn) error) error) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rc *rawsqlite.Conn
	if err := conn.Raw(func(dc any) (err error) { rc, err = rawsqlite.Of(dc); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Raw(func(any) error { rc.Close(); return nil })
		conn.Close()
	})
	return conn, func(f func(*rawsqlite.Conn) error) error {
		return conn.Raw(func(any) error { return f(rc) })
	}
}

type valuer struct{ v driver.Value }

func (v valuer) Value() (driver.Value, error) { return v.v, nil }

// TestExecStoresWhatDatabaseSQLStores: every kind of argument, bound here, makes the row
// database/sql and the driver make of it: the same value and the same SQLite type.
func TestExecStoresWhatDatabaseSQLStores(t *testing.T) {
	conn, raw := open(t)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE a (k INTEGER PRIMARY KEY, v); CREATE TABLE b (k INTEGER PRIMARY KEY, v)`); err != nil {
		t.Fatal(err)
	}
	values := []any{
		nil, "", "text", "with\x00a NUL byte", "\xff\xfe not UTF-8", "ünïcødé ✓", strings.Repeat("long ", 10000),
		[]byte(nil), []byte{}, []byte{0, 1, 2, 255},
		int64(math.MinInt64), int64(math.MaxInt64), 0, -1, int8(-8), int16(16), int32(-32), uint8(8), uint16(16), uint32(math.MaxUint32),
		uint(7), uint64(math.MaxInt64), 1.5, float32(0.25), math.Inf(-1), true, false,
		valuer{"valued"}, valuer{int64(42)}, valuer{nil},
	}
	for i, v := range values {
		if _, err := conn.ExecContext(ctx, `INSERT INTO a VALUES (?, ?)`, i, v); err != nil {
			t.Fatalf("%d (%T): database/sql: %v", i, v, err)
		}
		if err := raw(func(c *rawsqlite.Conn) error { return c.Exec(`INSERT INTO b VALUES (?, ?)`, []any{i, v}) }); err != nil {
			t.Fatalf("%d (%T): %v", i, v, err)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT a.k, typeof(a.v), quote(a.v), typeof(b.v), quote(b.v) FROM a JOIN b USING (k) ORDER BY a.k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var k int
		var ta, qa, tb, qb string
		if err := rows.Scan(&k, &ta, &qa, &tb, &qb); err != nil {
			t.Fatal(err)
		}
		if ta != tb || qa != qb {
			t.Errorf("%d (%T): %s %.60s here, %s %.60s through database/sql", k, values[k], tb, qb, ta, qa)
		}
		n++
	}
	if n != len(values) {
		t.Fatalf("%d rows compared, want %d", n, len(values))
	}
}

// TestExecMultiRowInsideATransaction: a multi-row statement run here is part of the
// database/sql transaction open on the connection: rolled back with it, committed with it.
func TestExecMultiRowInsideATransaction(t *testing.T) {
	conn, raw := open(t)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE r (k INTEGER PRIMARY KEY, s TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert := func(from int) error {
		args := make([]any, 0, 128)
		for k := from; k < from+64; k++ {
			args = append(args, k, fmt.Sprint("row ", k)) // fresh strings, only args holds them
		}
		return raw(func(c *rawsqlite.Conn) error {
			return c.Exec(`INSERT INTO r VALUES `+strings.TrimSuffix(strings.Repeat("(?, ?), ", 64), ", "), args)
		})
	}
	count := func() (n int) {
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM r WHERE s = 'row ' || k`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, commit := range []bool{false, true} {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := insert(0); err != nil {
			t.Fatal(err)
		}
		if err := insert(64); err != nil {
			t.Fatal(err)
		}
		var inside int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM r`).Scan(&inside); err != nil || inside != 128 {
			t.Fatalf("inside the transaction: %d rows, %v", inside, err)
		}
		if commit {
			err = tx.Commit() // no statement of ours left running
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 128}[commit]; count() != want {
			t.Fatalf("commit %v: %d rows, want %d", commit, count(), want)
		}
	}
}

// TestExecRefusesAndChangesNothing: what Exec refuses, it says, and the table is as before.
func TestExecRefusesAndChangesNothing(t *testing.T) {
	conn, raw := open(t)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE u (k INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE); INSERT INTO u VALUES (1, 'taken')`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{`INSERT INTO u VALUES (?, ?)`, []any{2, "taken"}, "UNIQUE constraint failed: u.s"},
		{`INSERT INTO u VALUES (?, ?)`, []any{2, nil}, "NOT NULL constraint failed: u.s"},
		{`INSERT INTO u VALUES (?, ?)`, []any{2}, "1 arguments for 2 parameters"},
		{`INSERT INTO u VALUES (?, ?)`, []any{2, time.Now()}, "type time.Time is not bound here"},
		{`INSERT INTO u VALUES (?, ?)`, []any{uint64(math.MaxUint64), "x"}, "above the largest SQLite integer"},
		{`INSERT INTO u VALUES (?, ?)`, []any{2, valuer{valuer{"x"}}}, "a driver.Valuer again"},
		{`INSERT INTO u VALUES (2, 'a'); INSERT INTO u VALUES (3, 'b')`, nil, "more than one statement"},
		{`SELECT * FROM u`, nil, "returns rows"},
		{`INSERT INTO nowhere VALUES (1)`, nil, "no such table: nowhere"},
	} {
		err := raw(func(rc *rawsqlite.Conn) error { return rc.Exec(c.query, c.args) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want an error saying %q", c.query, c.args, err, c.want)
		}
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM u`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("after %s: %d rows, %v", c.query, n, err)
		}
	}
	// The statement that failed on a constraint runs again with other arguments.
	if err := raw(func(rc *rawsqlite.Conn) error { return rc.Exec(`INSERT INTO u VALUES (?, ?)`, []any{2, "free"}) }); err != nil {
		t.Fatal(err)
	}
}

// TestOfRefusesOtherConnections: only a modernc.org/sqlite connection has a handle.
func TestOfRefusesOtherConnections(t *testing.T) {
	type conn struct {
		db  uintptr
		tls *int
	}
	for _, v := range []any{nil, 1, &conn{}, struct{}{}, (*conn)(nil)} {
		if _, err := rawsqlite.Of(v); !errors.Is(err, rawsqlite.ErrNotModernc) {
			t.Errorf("Of(%T): %v", v, err)
		}
	}
}

// TestQueryReadsWhatDatabaseSQLReads: Query's rows give each column's integer or bytes as
// database/sql scans them (NULL nil, an empty text empty), stop at the function's error, and
// report SQLite's own error; the statement runs again afterwards.
func TestQueryReadsWhatDatabaseSQLReads(t *testing.T) {
	conn, raw := open(t)
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE q (k INTEGER PRIMARY KEY, s, b)`); err != nil {
		t.Fatal(err)
	}
	vals := []struct {
		s any
		b any
	}{{"", []byte{}}, {nil, nil}, {"with\x00NUL", []byte{0, 255}}, {"ünï", []byte("x")}, {strings.Repeat("long", 5000), nil}}
	for i, v := range vals {
		if _, err := conn.ExecContext(ctx, `INSERT INTO q VALUES (?, ?, ?)`, i-2, v.s, v.b); err != nil {
			t.Fatal(err)
		}
	}
	const query = `SELECT k, s, b FROM q WHERE k >= ? ORDER BY k`
	type row struct {
		k    int64
		s, b []byte
	}
	var want []row
	rows, err := conn.QueryContext(ctx, query, -100)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r row
		var s sql.NullString
		if err := rows.Scan(&r.k, &s, &r.b); err != nil {
			t.Fatal(err)
		}
		if s.Valid {
			r.s = []byte(s.String)
		}
		want = append(want, r)
	}
	rows.Close()
	for range 2 {
		var got []row
		err := raw(func(c *rawsqlite.Conn) error {
			return c.Query(query, []any{-100}, func(r *rawsqlite.Rows) error {
				got = append(got, row{k: r.Int64(0), s: bytes.Clone(r.Bytes(1)), b: bytes.Clone(r.Bytes(2))})
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d rows, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].k != want[i].k || !bytes.Equal(got[i].s, want[i].s) || !bytes.Equal(got[i].b, want[i].b) {
				t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		// NULL is nil; an empty text or blob is empty, not nil (database/sql scans an empty
		// blob as nil: Bytes keeps the two apart).
		if got[0].s == nil || got[0].b == nil || got[1].s != nil || got[1].b != nil {
			t.Errorf("empty values %+v, NULLs %+v", got[0], got[1])
		}
	}
	stop := errors.New("enough")
	n := 0
	err = raw(func(c *rawsqlite.Conn) error {
		return c.Query(query, []any{-100}, func(*rawsqlite.Rows) error { n++; return stop })
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("the function's error: %v after %d rows", err, n)
	}
	err = raw(func(c *rawsqlite.Conn) error {
		return c.Query(`SELECT json(?)`, []any{"{"}, func(*rawsqlite.Rows) error { return nil })
	})
	if err == nil || !strings.Contains(err.Error(), "malformed JSON") {
		t.Fatalf("SQLite's error: %v", err)
	}
}
