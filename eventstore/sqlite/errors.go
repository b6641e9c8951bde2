package sqlite

import (
	"errors"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The driver reports SQLite's extended result codes (it turns them on for every connection),
// so a constraint failure carries which constraint kind failed and a busy error its flavour.
// These helpers look at the code, never at the message text, which SQLite and the driver
// are free to reword.

// resultCode returns the SQLite (extended) result code carried by err, and false when err
// holds no SQLite error.
func resultCode(err error) (int, bool) {
	var se *sqlitedriver.Error
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Code(), true
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure (an
// INSERT of a row whose key is already there). Other constraint failures (NOT NULL, CHECK,
// FOREIGN KEY) are not conflicts and report false.
func isUniqueViolation(err error) bool {
	c, ok := resultCode(err)
	return ok && (c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY or one of its
// extended codes): another connection holds the lock beyond the busy timeout, which a retry
// can cure.
func isBusy(err error) bool {
	c, ok := resultCode(err)
	return ok && c&0xff == sqlite3.SQLITE_BUSY
}
