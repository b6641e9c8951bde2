// Package rawsqlite runs statements on a modernc.org/sqlite connection through SQLite's own
// interface, not database/sql: for a rebuild's multi-row INSERTs (64 rows of up to 25
// columns a statement), whose arguments database/sql converts one by one into a slice of its
// own and the driver then copies, each string into memory it allocates and frees around the
// step. Here a statement is prepared once for the connection, the strings and blobs of an
// Exec are copied one after the other into one block of SQLite's memory kept from call to
// call and bound where they lie there (SQLITE_STATIC: SQLite reads them during the step),
// and the bindings are cleared before Exec returns.
//
// A Conn belongs to one driver connection, the value sql.Conn.Raw hands its function: use it
// only inside such a function, on that sql.Conn, and Close it there before the sql.Conn is
// closed. The connection's transactions stay database/sql's: a statement run here inside one
// is part of it.
package rawsqlite

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Conn is the C handle of a modernc.org/sqlite connection with the statements prepared on it.
type Conn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]uintptr
	out   [2]uintptr // prepare's out-parameters
	// arena is SQLite's memory (libc's heap) that an Exec copies its strings and blobs into,
	// grown as needed and kept: SQLite's code must not be given Go memory (it does pointer
	// arithmetic that the race detector's pointer checks refuse on the Go heap).
	arena []byte
}

// ErrNotModernc is Of's answer for a driver connection that is not modernc.org/sqlite's, or
// whose shape Of does not know (a driver version that changed it): the caller goes through
// database/sql instead.
var ErrNotModernc = errors.New("rawsqlite: not a modernc.org/sqlite connection of a known shape")

// Of returns the C handle of driverConn (what sql.Conn.Raw passes its function). The driver
// does not export it: Of reads the connection's db and tls fields, and checks their types.
func Of(driverConn any) (*Conn, error) {
	v := reflect.ValueOf(driverConn)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, ErrNotModernc
	}
	s := v.Elem()
	if t := s.Type(); t.PkgPath() != "modernc.org/sqlite" || t.Name() != "conn" {
		return nil, ErrNotModernc
	}
	db, tls := s.FieldByName("db"), s.FieldByName("tls")
	if !db.IsValid() || db.Kind() != reflect.Uintptr || !tls.IsValid() || tls.Type() != reflect.TypeFor[*libc.TLS]() {
		return nil, ErrNotModernc
	}
	c := &Conn{
		db:    *(*uintptr)(unsafe.Pointer(db.UnsafeAddr())),
		tls:   *(**libc.TLS)(unsafe.Pointer(tls.UnsafeAddr())),
		stmts: map[string]uintptr{},
	}
	if c.db == 0 || c.tls == nil {
		return nil, errors.New("rawsqlite: the connection is closed")
	}
	return c, nil
}

// Exec runs query, a statement that returns no rows, with args bound to its parameters in
// order. An argument is what database/sql's default converter accepts: nil, an integer of
// any size (an unsigned one up to math.MaxInt64), a float, a bool (1 or 0), a string, a
// []byte (nil is NULL) or a driver.Valuer giving one of these; a time.Time is refused (the
// caller chooses its encoding). The statement is prepared at its first Exec and kept.
func (c *Conn) Exec(query string, args []any) error {
	return c.run(query, args, func(st uintptr) error {
		switch rc := sqlite3.Xsqlite3_step(c.tls, st); rc {
		case sqlite3.SQLITE_DONE:
			return nil
		case sqlite3.SQLITE_ROW:
			return errors.New("rawsqlite: the statement returns rows")
		default:
			return c.error(rc)
		}
	})
}

// Query runs query, with args bound as Exec binds them, and calls row for each row it
// returns, in order, until row returns an error (which Query returns). The Rows is valid only
// during a call of row.
func (c *Conn) Query(query string, args []any, row func(*Rows) error) error {
	return c.run(query, args, func(st uintptr) error {
		r := &Rows{c: c, st: st}
		for {
			switch rc := sqlite3.Xsqlite3_step(c.tls, st); rc {
			case sqlite3.SQLITE_ROW:
				if err := row(r); err != nil {
					return err
				}
			case sqlite3.SQLITE_DONE:
				return nil
			default:
				return c.error(rc)
			}
		}
	})
}

// run prepares query (once), binds args and calls step with the statement; then it resets
// the statement (it no longer runs, so a COMMIT may follow) and clears its bindings (nothing
// points into the arena once run returns).
func (c *Conn) run(query string, args []any, step func(st uintptr) error) error {
	st, err := c.prepare(query)
	if err != nil {
		return err
	}
	if n := int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, st)); n != len(args) {
		return fmt.Errorf("rawsqlite: %d arguments for %d parameters", len(args), n)
	}
	defer func() {
		sqlite3.Xsqlite3_reset(c.tls, st)
		sqlite3.Xsqlite3_clear_bindings(c.tls, st)
	}()
	if err := c.grow(args); err != nil {
		return err
	}
	used := 0
	for i, a := range args {
		if used, err = c.bind(st, int32(i+1), a, used); err != nil {
			return fmt.Errorf("rawsqlite: argument %d: %w", i+1, err)
		}
	}
	return step(st)
}

// Rows is the current row of a Query. Columns are numbered from 0.
type Rows struct {
	c  *Conn
	st uintptr
}

// Int64 returns column i as an integer (SQLite's conversion for another type; 0 for NULL).
func (r *Rows) Int64(i int) int64 {
	return sqlite3.Xsqlite3_column_int64(r.c.tls, r.st, int32(i))
}

// Bytes returns column i's bytes, a text's or a blob's, where SQLite holds them: valid until
// the next row or the end of the Query, so a caller keeping them copies them. NULL is nil,
// an empty value is empty and not nil.
func (r *Rows) Bytes(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(r.c.tls, r.st, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(r.c.tls, r.st, int32(i))
	if p == 0 {
		if sqlite3.Xsqlite3_column_type(r.c.tls, r.st, int32(i)) == sqlite3.SQLITE_NULL {
			return nil
		}
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Add(nil, p)), n)
}

// grow makes the arena hold every string and blob of args.
func (c *Conn) grow(args []any) error {
	need := 0
	for _, a := range args {
		switch v := a.(type) {
		case string:
			need += len(v)
		case []byte:
			need += len(v) // a driver.Valuer's is copied by SQLite (bindValue)
		}
	}
	need++ // an empty value's place: a null pointer would bind NULL
	if need <= len(c.arena) {
		return nil
	}
	size := max(need, 2*len(c.arena), 64<<10)
	p := libc.Xmalloc(c.tls, libc.Tsize_t(size))
	if p == 0 {
		return fmt.Errorf("rawsqlite: cannot allocate %d bytes", size)
	}
	c.freeArena()
	c.arena = unsafe.Slice((*byte)(unsafe.Add(nil, p)), size)
	return nil
}

func (c *Conn) freeArena() {
	if len(c.arena) > 0 {
		libc.Xfree(c.tls, uintptr(unsafe.Pointer(unsafe.SliceData(c.arena))))
		c.arena = nil
	}
}

// place copies v into the arena at used and returns where it lies and the arena's new use.
func place[T string | []byte](c *Conn, v T, used int) (uintptr, int32, int, error) {
	if len(v) > math.MaxInt32 {
		return 0, 0, used, fmt.Errorf("%d bytes: too long", len(v))
	}
	if used+len(v) >= len(c.arena) {
		return 0, 0, used, errors.New("rawsqlite: the arena is too small") // grow measured it
	}
	n := copy(c.arena[used:], v)
	return uintptr(unsafe.Pointer(&c.arena[used])), int32(n), used + n, nil
}

// bind binds a to parameter i, a string or blob copied into the arena at used; it returns
// the arena's new use.
func (c *Conn) bind(st uintptr, i int32, a any, used int) (int, error) {
	var rc int32
	switch v := a.(type) {
	case nil:
		rc = sqlite3.Xsqlite3_bind_null(c.tls, st, i)
	case string:
		p, n, u, err := place(c, v, used)
		if err != nil {
			return used, err
		}
		used = u
		rc = sqlite3.Xsqlite3_bind_text(c.tls, st, i, p, n, 0)
	case []byte:
		if v == nil {
			rc = sqlite3.Xsqlite3_bind_null(c.tls, st, i)
			break
		}
		p, n, u, err := place(c, v, used)
		if err != nil {
			return used, err
		}
		used = u
		rc = sqlite3.Xsqlite3_bind_blob(c.tls, st, i, p, n, 0)
	case int64, int, int32, int16, int8, uint64, uint, uint32, uint16, uint8, bool:
		n, err := integer(v)
		if err != nil {
			return used, err
		}
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, st, i, n)
	case float64:
		rc = sqlite3.Xsqlite3_bind_double(c.tls, st, i, v)
	case float32:
		rc = sqlite3.Xsqlite3_bind_double(c.tls, st, i, float64(v))
	case driver.Valuer:
		return used, c.bindValue(st, i, v)
	default:
		return used, fmt.Errorf("type %T is not bound here", a)
	}
	if rc != sqlite3.SQLITE_OK {
		return used, c.error(rc)
	}
	return used, nil
}

// integer is SQLite's integer for v, an integer type's value or a bool's 1 or 0.
func integer(v any) (int64, error) {
	var u uint64
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case uint64:
		u = x
	case uint:
		u = uint64(x)
	case uint32:
		u = uint64(x)
	case uint16:
		u = uint64(x)
	case uint8:
		u = uint64(x)
	default:
		return 0, fmt.Errorf("type %T is not an integer", v)
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("%T %d is above the largest SQLite integer", v, u)
	}
	return int64(u), nil
}

// bindValue binds what a driver.Valuer gives; a string or blob SQLite copies
// (SQLITE_TRANSIENT), the arena being measured without it.
func (c *Conn) bindValue(st uintptr, i int32, v driver.Valuer) error {
	dv, err := v.Value()
	if err != nil {
		return err
	}
	var rc int32
	switch x := dv.(type) {
	case driver.Valuer:
		return fmt.Errorf("%T's value is a driver.Valuer again", v)
	case string:
		z, err := libc.CString(x)
		if err != nil {
			return err
		}
		defer libc.Xfree(c.tls, z)
		rc = sqlite3.Xsqlite3_bind_text(c.tls, st, i, z, int32(len(x)), transient)
	case []byte:
		if x == nil {
			rc = sqlite3.Xsqlite3_bind_null(c.tls, st, i)
			break
		}
		p := libc.Xmalloc(c.tls, libc.Tsize_t(len(x)+1))
		if p == 0 {
			return errors.New("rawsqlite: out of memory")
		}
		defer libc.Xfree(c.tls, p)
		copy(unsafe.Slice((*byte)(unsafe.Add(nil, p)), len(x)), x)
		rc = sqlite3.Xsqlite3_bind_blob(c.tls, st, i, p, int32(len(x)), transient)
	default:
		_, err := c.bind(st, i, dv, 0) // no string or blob: the arena is not used
		return err
	}
	if rc != sqlite3.SQLITE_OK {
		return c.error(rc)
	}
	return nil
}

// transient is SQLITE_TRANSIENT, ((sqlite3_destructor_type)-1): SQLite copies the value.
const transient = ^uintptr(0)

// prepare returns query's statement, prepared at the first call (as a persistent one: it is
// kept for the connection's life).
func (c *Conn) prepare(query string) (uintptr, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	z, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, z)
	// The statement and the tail are written into c.out (the heap: a stack may move while
	// SQLite runs).
	out := uintptr(unsafe.Pointer(&c.out[0]))
	rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, out, out+unsafe.Sizeof(uintptr(0)))
	st, tail := c.out[0], c.out[1]
	runtime.KeepAlive(c)
	if rc != sqlite3.SQLITE_OK {
		return 0, c.error(rc)
	}
	if st == 0 {
		return 0, errors.New("rawsqlite: no statement in the query")
	}
	if rest := libc.GoString(tail); len(trimSpace(rest)) != 0 {
		sqlite3.Xsqlite3_finalize(c.tls, st)
		return 0, errors.New("rawsqlite: more than one statement in the query")
	}
	c.stmts[query] = st
	return st, nil
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == ';') {
		s = s[1:]
	}
	return s
}

// error is the connection's message for rc.
func (c *Conn) error(rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	return fmt.Errorf("rawsqlite: %s (%d)", msg, sqlite3.Xsqlite3_extended_errcode(c.tls, c.db))
}

// Close finalizes the statements prepared on the connection and frees the arena; the
// connection stays open.
func (c *Conn) Close() {
	for q, st := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, st)
		delete(c.stmts, q)
	}
	c.freeArena()
}
