package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vigil-auth/vigil/eventstore/sealed"
)

var testServerKey = bytes.Repeat([]byte{0x42}, 32)

func openT(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(path, testServerKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// filesHold reports whether keys.db, -wal or -shm holds b.
func filesHold(t *testing.T, path string, b []byte) bool {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

func TestDestroyLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openT(t, path)
	keyA, err := s.Key(ctx, "account-a", true)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := s.Key(ctx, "account-b", true)
	if err != nil {
		t.Fatal(err)
	}
	var wrappedA, wrappedB []byte
	if err := s.db.QueryRow(`SELECT wrapped FROM keys WHERE id = 'account-a'`).Scan(&wrappedA); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT wrapped FROM keys WHERE id = 'account-b'`).Scan(&wrappedB); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The raw key is never in the files; the wrapped one is until destroyed (the scan works).
	if filesHold(t, path, keyA) || !filesHold(t, path, wrappedA) {
		t.Fatal("before the destroy: want the wrapped key and not the raw key in the files")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys.db mode %v (%v), want 0600", fi.Mode(), err)
	}

	s = openT(t, path)
	if err := s.Destroy(ctx, "account-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx, "account-a", true); !errors.Is(err, sealed.ErrKeyDestroyed) {
		t.Fatalf("Key of a destroyed key: %v, want ErrKeyDestroyed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if filesHold(t, path, keyA) || filesHold(t, path, wrappedA) {
		t.Fatal("after Destroy and Close a file still holds the key")
	}
	if !filesHold(t, path, wrappedB) {
		t.Fatal("the other key is gone from the files")
	}
	s = openT(t, path)
	if got, err := s.Key(ctx, "account-b", false); err != nil || !bytes.Equal(got, keyB) {
		t.Fatalf("the other key after reopening: %x, %v", got, err)
	}
}

func TestKeyLifecycle(t *testing.T) {
	testLifecycle(t, openT(t, filepath.Join(t.TempDir(), "keys.db")), func(s string) string { return s })
}

// testLifecycle is the behaviour every sealed.KeyStore shares; fresh makes key ids unique on a
// shared server.
func testLifecycle(t *testing.T, s sealed.KeyStore, fresh func(string) string) {
	ctx := context.Background()
	x, y := fresh("account-x"), fresh("account-y")
	if _, err := s.Key(ctx, x, false); !errors.Is(err, sealed.ErrKeyNotFound) {
		t.Fatalf("Key of a key never created: %v", err)
	}
	if _, err := s.Key(ctx, "bad:id", true); err == nil {
		t.Fatal("an invalid key id was accepted")
	}
	// Concurrent creators all get the one stored key.
	keys := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := s.Key(ctx, x, true)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if len(k) != sealed.KeySize || !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent creators got different keys")
		}
	}
	// Destroying a key never created keeps it from ever being created; destroying twice is fine.
	if err := s.Destroy(ctx, y, x, x); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{x, y} {
		if _, err := s.Key(ctx, id, true); !errors.Is(err, sealed.ErrKeyDestroyed) {
			t.Fatalf("Key(%s) after Destroy: %v", id, err)
		}
	}
}

func TestWrongServerKeyAndShortKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := openT(t, path)
	s.Close()
	_, err := OpenSQLite(path, bytes.Repeat([]byte{1}, 32))
	if !errors.Is(err, sealed.ErrWrongServerKey) {
		t.Fatalf("another server key: %v", err)
	}
	if _, err := OpenSQLite(path, []byte("short")); err == nil {
		t.Fatal("a 5-byte server key was accepted")
	}
}
