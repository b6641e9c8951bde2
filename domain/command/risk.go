package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/validate"
)

// RecordSignInRisk appends ev (SignInRiskDetected) to the account's stream with metadata md,
// for the sign-in risk detector (package risk) that judged a successful sign-in against the
// account's history. md carries the sign-in's address and user agent, so that the activity
// log locates the record like the sign-in; its subject is the account, its actor the system
// unless md names one.
//
// It is idempotent per ev.SessionID: when the account's stream already holds a
// SignInRiskDetected for that session (a sign-in handled again after a crash or a replay),
// nothing is appended and the position of the one recorded is returned. Concurrent calls for
// the same session append at most one (the append expects the version read). An account
// that does not exist or was erased is domain.ErrNotFound; ev without a session id or with no
// or unknown signals is a validation error.
func (s *Service) RecordSignInRisk(ctx context.Context, accountID string, ev domain.SignInRiskDetected, md domain.Metadata) (uint64, error) {
	if accountID == "" {
		return 0, validate.Invalid("account_id", "is required")
	}
	if ev.SessionID == "" {
		return 0, validate.Invalid("session_id", "is required")
	}
	if len(ev.Signals) == 0 {
		return 0, validate.Invalid("signals", "at least one signal is required")
	}
	for _, sig := range ev.Signals {
		switch sig {
		case domain.SignalNewDevice, domain.SignalNewCountry, domain.SignalImpossibleTravel:
		default:
			return 0, validate.Invalid("signals", "unknown signal %q", sig)
		}
	}
	ev.Signals = slices.Clone(ev.Signals)
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	md.SubjectAccountID = accountID
	if md.Actor.Type == "" {
		md.Actor = domain.Actor{Type: domain.ActorSystem}
	}
	stream := domain.AccountStream(accountID)
	for attempt := 1; ; attempt++ {
		events, err := s.readAll(ctx, stream)
		if err != nil {
			return 0, fmt.Errorf("record sign-in risk: read %s: %w", stream, err)
		}
		if len(events) == 0 {
			return 0, fmt.Errorf("account %s: %w", accountID, domain.ErrNotFound)
		}
		for _, e := range events {
			switch e.Type {
			case domain.EventAccountErased:
				return 0, fmt.Errorf("account %s: %w", accountID, domain.ErrNotFound)
			case domain.EventSignInRiskDetected:
				var seen struct {
					SessionID string `json:"session_id"`
				}
				if json.Unmarshal(e.Data, &seen) == nil && seen.SessionID == ev.SessionID {
					return e.Position, nil
				}
			}
		}
		version := events[len(events)-1].Version
		res, err := s.appendEvents(ctx, stream, expect.Exact(version), []domain.Event{ev}, md)
		if err == nil {
			return res.LastPosition, nil
		}
		if !errors.Is(err, expect.ErrWrongVersion) || attempt >= s.cfg.MaxRetries {
			return 0, fmt.Errorf("record sign-in risk for account %s after %d attempts: %w", accountID, attempt, err)
		}
	}
}
