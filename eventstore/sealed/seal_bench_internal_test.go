package sealed

import (
	"bytes"
	"context"
	"testing"

	"github.com/vigil-auth/vigil/domain"
)

// BenchmarkSealOpen measures the CPU that sealing and opening add to one event (three values:
// a typed email, IP and user agent), with the key cached, apart from any store.
func BenchmarkSealOpen(b *testing.B) {
	s, _ := New(nopStore{}, Config{Keys: memKeys{"account-a": bytes.Repeat([]byte{1}, KeySize)},
		Personal: func(string, int) []string { return []string{"attempted_email"} },
		Owner:    func(domain.EventData, string) (string, bool) { return "account-a", true }})
	ev, _ := domain.NewEventData("LoginFailed", 1, map[string]any{"reason": "bad_password", "stage": "password",
		"method": "password", "attempted_email": "user@example.com"}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem},
		SubjectAccountID: "a", IP: "203.0.113.54", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"})
	ctx := context.Background()
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := s.seal(ctx, "account-a", ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	sealed, _, _ := s.seal(ctx, "account-a", ev)
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			e := domain.Envelope{ID: sealed.ID, Type: sealed.Type, SchemaVersion: 1, Data: sealed.Data, Metadata: sealed.Metadata}
			if err := s.open(ctx, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
