package command_test

import (
	"errors"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/validate"
)

func TestRecordSignInRiskIsIdempotentPerSession(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	auth := h.login("ann@example.com")
	ev := domain.SignInRiskDetected{SessionID: auth.Session.ID, LoginEventID: "e1",
		Signals: []string{domain.SignalNewCountry, domain.SignalImpossibleTravel}, Country: "BR", PreviousCountry: "GB", SpeedKMH: 9000}
	md := domain.Metadata{IP: "200.1.2.3", UserAgent: "Mozilla/5.0"}

	// Concurrent and repeated calls for one session append one event.
	errs := race(4, func(int) error { _, err := h.svc.RecordSignInRisk(h.ctx, id, ev, md); return err })
	for _, err := range errs {
		if err != nil {
			t.Fatalf("RecordSignInRisk: %v", err)
		}
	}
	pos, err := h.svc.RecordSignInRisk(h.ctx, id, ev, md)
	if err != nil || pos == 0 {
		t.Fatalf("again: %d %v", pos, err)
	}
	var found []domain.Envelope
	for _, e := range h.events(domain.AccountStream(id)) {
		if e.Type == domain.EventSignInRiskDetected {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d SignInRiskDetected, want 1", len(found))
	}
	got := h.decode(found[0]).(domain.SignInRiskDetected)
	if found[0].Position != pos || got.SessionID != auth.Session.ID || got.At.IsZero() || len(got.Signals) != 2 {
		t.Errorf("recorded %+v at %d (returned %d)", got, found[0].Position, pos)
	}
	if m := found[0].Metadata; m.IP != "200.1.2.3" || m.SubjectAccountID != id || m.Actor.Type != domain.ActorSystem {
		t.Errorf("metadata %+v", m)
	}
	// The account still loads (its aggregate knows the event).
	if _, err := h.svc.Account(h.ctx, id); err != nil {
		t.Fatalf("Account after the risk event: %v", err)
	}

	// Another session gets its own.
	ev2 := ev
	ev2.SessionID = "other"
	if p2, err := h.svc.RecordSignInRisk(h.ctx, id, ev2, md); err != nil || p2 <= pos {
		t.Errorf("second session: %d %v", p2, err)
	}

	// Bad input changes nothing.
	for _, bad := range []domain.SignInRiskDetected{{SessionID: "x"}, {Signals: []string{domain.SignalNewDevice}},
		{SessionID: "x", Signals: []string{"weird"}}} {
		if _, err := h.svc.RecordSignInRisk(h.ctx, id, bad, md); !errors.Is(err, validate.ErrInvalidInput) {
			t.Errorf("RecordSignInRisk(%+v) = %v, want invalid input", bad, err)
		}
	}
	if _, err := h.svc.RecordSignInRisk(h.ctx, "nobody", ev, md); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
}
