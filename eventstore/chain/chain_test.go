package chain_test

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// vector is README's worked example: changing the canonical layout breaks every stored chain,
// so the bytes and the hash are pinned here.
func vector() domain.Envelope {
	return domain.Envelope{
		ID: "0190f1c4-7b1e-7c3a-9d2e-1a2b3c4d5e6f", StreamID: "account-1", Version: 1, Position: 1,
		Type: "AccountRegistered", SchemaVersion: 1, RecordedAt: time.Unix(0, 1700000000123456789).UTC(),
		Data:     []byte(`{"a":1}`),
		Metadata: domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: "1"}, IP: "203.0.113.7"},
	}
}

func TestCanonicalBytesArePinned(t *testing.T) {
	e := vector()
	got := hex.EncodeToString(chain.AppendCanonical(nil, &e))
	const want = "000000243031393066316334" // the id's length (36) and its first bytes
	if got[:len(want)] != want {
		t.Fatalf("canonical bytes start %s, want %s", got[:len(want)], want)
	}
	sum := chain.Next(chain.Zero, &e)
	const pinned = "3bcdebca9cc92fb7cf7689b92459d524dfb929132cffbe9c788dc112909a634b"
	if sum.String() != pinned {
		t.Fatalf("the hash of README's example is %s, want %s (the canonical layout changed?)", sum, pinned)
	}
}

func TestEveryFieldChangesTheHash(t *testing.T) {
	base := vector()
	h := chain.Next(chain.Zero, &base)
	edits := map[string]func(e *domain.Envelope){
		"id": func(e *domain.Envelope) { e.ID += "0" }, "stream": func(e *domain.Envelope) { e.StreamID += "0" },
		"version": func(e *domain.Envelope) { e.Version++ }, "position": func(e *domain.Envelope) { e.Position++ },
		"type": func(e *domain.Envelope) { e.Type += "0" }, "schema": func(e *domain.Envelope) { e.SchemaVersion++ },
		"time": func(e *domain.Envelope) { e.RecordedAt = e.RecordedAt.Add(1) }, "data": func(e *domain.Envelope) { e.Data = []byte(`{"a": 1}`) },
		"actor type": func(e *domain.Envelope) { e.Metadata.Actor.Type = "admin" }, "actor id": func(e *domain.Envelope) { e.Metadata.Actor.ID = "2" },
		"subject": func(e *domain.Envelope) { e.Metadata.SubjectAccountID = "x" }, "ip": func(e *domain.Envelope) { e.Metadata.IP = "" },
		"user agent": func(e *domain.Envelope) { e.Metadata.UserAgent = "x" }, "client": func(e *domain.Envelope) { e.Metadata.ClientID = "x" },
		"correlation": func(e *domain.Envelope) { e.Metadata.CorrelationID = "x" }, "causation": func(e *domain.Envelope) { e.Metadata.CausationID = "x" },
		// A field's bytes moving into the next field changes the hash too (length prefixes).
		"boundary": func(e *domain.Envelope) { e.Metadata.Actor.ID, e.Metadata.SubjectAccountID = "", "1" },
	}
	for name, edit := range edits {
		e := vector()
		edit(&e)
		if chain.Next(chain.Zero, &e) == h {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	if chain.Next(h, &base) == h {
		t.Error("the previous hash does not count")
	}
}

func TestCheckpointSignature(t *testing.T) {
	kr, created, err := chain.EnsureKeyRing(filepath.Join(t.TempDir(), "k"), time.Now())
	if err != nil || !created {
		t.Fatal(created, err)
	}
	cp := kr.Sign(42, chain.Sum{1}, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	if string(cp.Message()) != "vigil.checkpoint.v1\n42\n"+cp.Hash+"\n2025-01-02T03:04:05Z" {
		t.Fatalf("message %q", cp.Message())
	}
	if err := kr.Public().Verify(cp); err != nil {
		t.Fatal(err)
	}
	bad := cp
	bad.Position = 43
	if err := kr.Public().Verify(bad); err == nil {
		t.Fatal("a checkpoint moved to another position verifies")
	}
	if info := kr.Keys()[0]; len(info.KeyID) != 16 || info.Algorithm != "Ed25519" || len(info.PublicKey) != 44 {
		t.Fatalf("key info %+v", info)
	}
}

// FuzzVerifyExport: whatever the file holds, the export reader and verifier answer without
// panicking, and a verdict of success is only given to an export that round-trips.
func FuzzVerifyExport(f *testing.F) {
	kr, _, err := chain.EnsureKeyRing(filepath.Join(f.TempDir(), "k"), time.Unix(1, 0))
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	x, _ := chain.NewExportWriter(&buf, true)
	prev := chain.Zero
	var evs []domain.Envelope
	for i := 1; i <= 3; i++ {
		e := vector()
		e.Position, e.Version = uint64(i), uint64(i)
		prev = chain.Next(prev, &e)
		e.Hash = prev.String()
		evs = append(evs, e)
	}
	_ = x.Checkpoint(kr.Sign(2, mustSum(evs[1].Hash), time.Unix(5, 0)))
	for _, e := range evs {
		_ = x.Event(e)
	}
	_ = x.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	f.Add([]byte(`{"vigil_log_export":1,"positions":"sparse"}` + "\n" + `{"end":{"events":0,"checkpoints":0,"head":0}}` + "\n"))
	f.Add([]byte("{}\n"))
	keys := kr.Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := chain.VerifyExport(bytes.NewReader(data), keys)
		if err == nil && res.Events > 0 && res.Head == 0 {
			t.Fatalf("verified %d events up to position 0", res.Events)
		}
	})
}

func mustSum(h string) chain.Sum {
	s, err := chain.ParseSum(h)
	if err != nil {
		panic(err)
	}
	return s
}
