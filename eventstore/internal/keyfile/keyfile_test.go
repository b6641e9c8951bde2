package keyfile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

type key struct{ Seed string }

func load(path string) (key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return key{}, err
	}
	var k key
	return k, json.Unmarshal(raw, &k)
}

func fresh() (key, error) { return key{Seed: hex.EncodeToString([]byte(rand.Text()))}, nil }

func open(k key) (key, error) { return k, nil }

// TestEnsureMakesOneKey: of concurrent first starts exactly one makes the file, and every one
// of them ends with that key; the file is private.
func TestEnsureMakesOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "k.json")
	const n = 8
	keys := make([]key, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if keys[i], created[i], err = Ensure(path, load, fresh, open); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	makers := 0
	for i := range n {
		if created[i] {
			makers++
		}
		if keys[i] != keys[0] || keys[i].Seed == "" {
			t.Fatalf("start %d has key %q, start 0 %q", i, keys[i].Seed, keys[0].Seed)
		}
	}
	if makers != 1 {
		t.Fatalf("%d starts made the file, want 1", makers)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if k, created, err := Ensure(path, load, fresh, open); err != nil || created || k != keys[0] {
		t.Fatalf("a later start: %v %v %v", k, created, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}
