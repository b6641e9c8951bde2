package keystore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sealed/keystore"
)

// kurrentServerKey is fixed: the check stream of a shared, long-lived test server outlives runs.
var kurrentServerKey = bytes.Repeat([]byte{0x6b}, 32)

// TestKurrentDB runs the key store against a real server named by VIGIL_TEST_KURRENTDB, like
// eventstore/kurrentdb's contract tests. Key ids are fresh, so a shared server is fine.
func TestKurrentDB(t *testing.T) {
	cs := os.Getenv("VIGIL_TEST_KURRENTDB")
	if cs == "" {
		if os.Getenv("VIGIL_REQUIRE_ALL") == "1" {
			t.Fatal("VIGIL_TEST_KURRENTDB is not set but VIGIL_REQUIRE_ALL=1")
		}
		t.Skip("set VIGIL_TEST_KURRENTDB=kurrentdb://localhost:2113?tls=false to run the KurrentDB key store tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := keystore.OpenKurrentDB(ctx, cs, kurrentServerKey)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	id := sealed.AccountKeyID(domain.NewID())
	if _, err := k.Key(ctx, id, false); !errors.Is(err, sealed.ErrKeyNotFound) {
		t.Fatalf("Key of a key never created: %v", err)
	}
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, err := k.Key(ctx, id, true)
			if err != nil {
				t.Error(err)
			}
			keys[i] = key
		}()
	}
	wg.Wait()
	for _, key := range keys[1:] {
		if len(key) != sealed.KeySize || !bytes.Equal(key, keys[0]) {
			t.Fatal("concurrent creators got different keys")
		}
	}
	if err := k.Destroy(ctx, id, id); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Key(ctx, id, true); !errors.Is(err, sealed.ErrKeyDestroyed) {
		t.Fatalf("Key after Destroy: %v", err)
	}
	if _, err := keystore.OpenKurrentDB(ctx, cs, bytes.Repeat([]byte{1}, 32)); !errors.Is(err, sealed.ErrWrongServerKey) {
		t.Fatalf("another server key: %v", err)
	}
}
