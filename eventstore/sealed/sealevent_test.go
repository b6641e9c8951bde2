package sealed_test

import (
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// TestSealEventOpensOnceCopied: an event sealed by SealEvent and written to the inner log
// as it is (what `vigil log migrate` does) reads back as it was; nothing personal is left
// alone; an event sealed already is refused rather than sealed twice.
func TestSealEventOpensOnceCopied(t *testing.T) {
	f := open(t, t.TempDir())
	c := ctx(t)
	stream := domain.AccountStream(alice.account)
	ev := registered(t, alice)
	out, changed, err := f.store.SealEvent(c, stream, ev)
	if err != nil || !changed || out.ID != ev.ID {
		t.Fatalf("SealEvent: changed %v, id %s, %v", changed, out.ID, err)
	}
	for _, v := range personalValues(alice) {
		if strings.Contains(string(out.Data), v) || strings.Contains(out.Metadata.IP+out.Metadata.UserAgent, v) {
			t.Errorf("sealed event still holds %q: %s %+v", v, out.Data, out.Metadata)
		}
	}
	if _, err := f.inner.Append(c, stream, eventstore.NoStream, []domain.EventData{out}); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.ReadStream(c, stream, 1, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("read back: %d events, %v", len(got), err)
	}
	if a, b := dataOf(t, got[0].Data), dataOf(t, ev.Data); len(a) != len(b) || a["email"] != b["email"] || a["last_name"] != b["last_name"] || got[0].Metadata != ev.Metadata {
		t.Errorf("read back %s %+v, want %s %+v", got[0].Data, got[0].Metadata, ev.Data, ev.Metadata)
	}

	if _, _, err := f.store.SealEvent(c, stream, out); err == nil || !strings.Contains(err.Error(), "already holds sealed values") {
		t.Errorf("sealing a sealed event again: %v", err)
	}
	ipOnly := ev
	ipOnly.Data, ipOnly.Metadata.UserAgent, ipOnly.Metadata.IP = []byte(`{"email":"x@example.com"}`), "", out.Metadata.IP
	if _, _, err := f.store.SealEvent(c, stream, ipOnly); err == nil {
		t.Error("an event whose IP alone is sealed was sealed again")
	}
	plain, err := domain.NewEventData("Unlisted", 1, map[string]int{"n": 1}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if err != nil {
		t.Fatal(err)
	}
	if same, changed, err := f.store.SealEvent(c, stream, plain); err != nil || changed || string(same.Data) != string(plain.Data) {
		t.Errorf("an event with nothing personal: changed %v, %s, %v", changed, same.Data, err)
	}
}
