package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor is returned by the list queries for a cursor they did not issue (or issued
// by another list). The HTTP layer answers 400 invalid_request.
var ErrBadCursor = errors.New("projections: invalid cursor")

// Page sizes of the list queries: a limit of zero or less means DefaultLimit, above
// MaxLimit means MaxLimit (API.md: default 50, max 500).
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// encodeCursor makes the opaque cursor of a list (kind tells the lists apart) that resumes
// after the row at position pos.
func encodeCursor(kind string, pos uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatUint(pos, 10)))
}

// decodeCursor returns the position of a cursor of kind; "" gives 0 (the first page). Only
// the cursors encodeCursor makes are accepted.
func decodeCursor(kind, cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, ErrBadCursor
	}
	k, p, ok := strings.Cut(string(raw), ":")
	if !ok || k != kind {
		return 0, ErrBadCursor
	}
	pos, err := strconv.ParseUint(p, 10, 63)
	if err != nil || pos == 0 || encodeCursor(kind, pos) != cursor {
		// The last check refuses what the decoders let through but encodeCursor never
		// writes ("a:07", a newline, other trailing bits): one position, one cursor.
		return 0, ErrBadCursor
	}
	return pos, nil
}

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// conditions are the WHERE conditions of a list query, joined with AND, and their arguments.
type conditions struct {
	where []string
	args  []any
}

// add appends a condition and the arguments of its placeholders.
func (c *conditions) add(cond string, args ...any) {
	c.where = append(c.where, cond)
	c.args = append(c.args, args...)
}

// page runs a newest-first keyset query: q (a SELECT without WHERE) filtered by c, which
// holds the cursor's bound, with LIMIT limit+1. It scans the rows, and returns at most limit
// of them with the cursor of the next page (kind-tagged, from the last row's position), or ""
// on the last page. name labels errors.
func page[T any](ctx context.Context, db *DB, name, kind, q string, c conditions, limit int,
	scan func(interface{ Scan(...any) error }) (T, error), pos func(T) uint64) ([]T, string, error) {
	if len(c.where) > 0 {
		q += ` WHERE ` + strings.Join(c.where, " AND ")
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY position DESC LIMIT ?`, append(c.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("projections: %s: %w", name, err)
	}
	defer rows.Close()
	var items []T
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("projections: %s: %w", name, err)
		}
		items = append(items, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("projections: %s: %w", name, err)
	}
	if len(items) > limit {
		items = items[:limit]
		return items, encodeCursor(kind, pos(items[limit-1])), nil
	}
	return items, "", nil
}

// lookup runs a one-row query q and scans the row with scan; ok is false when there is no
// row. Other errors are wrapped with what.
func lookup[T any](ctx context.Context, db *DB, what, q string, args []any,
	scan func(interface{ Scan(...any) error }) (T, error)) (row T, ok bool, err error) {
	row, err = scan(db.read.QueryRowContext(ctx, q, args...))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		var zero T
		return zero, false, nil
	case err != nil:
		var zero T
		return zero, false, fmt.Errorf("projections: %s: %w", what, err)
	}
	return row, true, nil
}

// scanString scans a row of one text column.
func scanString(sc interface{ Scan(...any) error }) (s string, err error) {
	err = sc.Scan(&s)
	return s, err
}
