package testkit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// SQLite opens a fresh SQLite event log in the test's temporary directory; it is closed when
// the test ends.
func SQLite(tb testing.TB) *sqlite.Store {
	tb.Helper()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(tb.TempDir(), "events.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

// Keyring returns a server keyring whose 32-byte key is fill repeated: tests that share a
// log (two instances, a restart) pass the same fill to read each other's sealed secrets.
func Keyring(tb testing.TB, fill string) *credential.Keyring {
	tb.Helper()
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: []byte(strings.Repeat(fill, 32))})
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// LogReader is the part of an event log ReadLog needs.
type LogReader interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// ReadLog returns every event of the log, in global order, page by page.
func ReadLog(tb testing.TB, log LogReader) []domain.Envelope {
	tb.Helper()
	var all []domain.Envelope
	for after := uint64(0); ; {
		page, err := log.ReadAll(context.Background(), after, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
}
