package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

func newStore(t *testing.T) eventstore.Store {
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { eventstoretest.Run(t, newStore) }
