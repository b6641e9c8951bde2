package projections_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/projections"
)

// TestSnapshotRefusesReadModelsWithoutEveryCheckpoint: read models that lack a projection's
// checkpoint (written by another version, or half rebuilt) are not stamped with this
// binary's schema version: an instance installing them would rebuild that projection from
// the log's start. With every checkpoint, the snapshot is written.
func TestSnapshotRefusesReadModelsWithoutEveryCheckpoint(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b := &ledger{name: "ledger_a"}, &ledger{name: "ledger_b"}
	r, stop := e.start(a, b)
	e.waitFor(r, e.append("s-1", 3))
	stop()
	out := filepath.Join(t.TempDir(), "snap.db")
	info, err := e.db.WriteSnapshot(ctx, out, []projections.Projection{a, b}, "log-1", time.Now())
	if err != nil {
		t.Fatalf("snapshot with every checkpoint: %v", err)
	}
	if info.Checkpoints["ledger_a"] != 3 || info.Checkpoints["ledger_b"] != 3 {
		t.Fatalf("checkpoints %v, want both at 3", info.Checkpoints)
	}
	// A projection this binary has and the read models do not.
	c := &ledger{name: "ledger_c"}
	out2 := filepath.Join(t.TempDir(), "snap.db")
	_, err = e.db.WriteSnapshot(ctx, out2, []projections.Projection{a, b, c}, "log-1", time.Now())
	if err == nil || !strings.Contains(err.Error(), "no checkpoint for ledger_c") || !strings.Contains(err.Error(), "projections rebuild") {
		t.Fatalf("snapshot of read models without ledger_c's checkpoint: %v", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("a refused snapshot left %s: %v", out2, err)
	}
}
