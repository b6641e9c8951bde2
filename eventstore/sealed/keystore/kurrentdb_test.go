package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sealed"
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
	k, err := OpenKurrentDB(ctx, cs, kurrentServerKey)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	run := domain.NewID()
	testLifecycle(t, k, func(s string) string { return s + "-" + run })
	if _, err := OpenKurrentDB(ctx, cs, bytes.Repeat([]byte{1}, 32)); !errors.Is(err, sealed.ErrWrongServerKey) {
		t.Fatalf("another server key: %v", err)
	}
}
