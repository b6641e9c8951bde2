package chain_test

import (
	"context"
	"os"
	"testing"

	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// BenchmarkVerifyLog measures VerifyLog over an existing log (VIGIL_BENCH_LOG=path/events.db),
// e.g. one made by `go run ./cmd/vigil-dev seed --events 1000000`; BENCHMARKS.md quotes it.
func BenchmarkVerifyLog(b *testing.B) {
	path := os.Getenv("VIGIL_BENCH_LOG")
	if path == "" {
		b.Skip("set VIGIL_BENCH_LOG to an events.db")
	}
	st, err := sqlite.Open(sqlite.Config{Path: path, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for b.Loop() {
		if _, err := chain.VerifyLog(context.Background(), st, chain.KeySet{}, true); err != nil {
			b.Fatal(err)
		}
	}
}
