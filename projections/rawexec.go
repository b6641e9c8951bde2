package projections

import (
	"context"
	"database/sql"
	"errors"

	"github.com/vigil-auth/vigil/eventstore/sqlite/rawsqlite"
)

// rawExec runs a rebuild lane's statements that return no rows (txExec's) through SQLite's
// own interface (rawsqlite) instead of database/sql: the lane's multi-row INSERTs bind up to
// 1,600 arguments a statement, and database/sql converts each into a slice of its own, the
// driver copying each string into memory it allocates and frees; that was a tenth of a
// rebuild's CPU. The batches' transactions stay database/sql's, begun on the one connection
// the lane holds (Applier.begin), so that a statement run here is part of the batch, and its
// reads (txScan) see what it wrote.
type rawExec struct {
	conn *sql.Conn
	c    *rawsqlite.Conn
}

// openRawExec takes a connection of db's writer for a lane, nil when the driver's connection
// has no handle rawsqlite knows (the lane then goes through database/sql). The lane holds
// the writer's one connection until close: nothing else may use db's writer meanwhile.
func openRawExec(ctx context.Context, db *DB) (*rawExec, error) {
	conn, err := db.write.db().Conn(ctx)
	if err != nil {
		return nil, err
	}
	r := &rawExec{conn: conn}
	err = conn.Raw(func(dc any) (err error) {
		r.c, err = rawsqlite.Of(dc)
		return err
	})
	if errors.Is(err, rawsqlite.ErrNotModernc) {
		return nil, conn.Close()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

func (r *rawExec) exec(query string, args []any) error {
	return r.conn.Raw(func(any) error { return r.c.Exec(query, args) })
}

// close finalizes the statements and gives the connection back. Nil is a no-op.
func (r *rawExec) close() error {
	if r == nil {
		return nil
	}
	err := r.conn.Raw(func(any) error { r.c.Close(); return nil })
	return errors.Join(err, r.conn.Close())
}
