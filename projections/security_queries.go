package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// Security returns the account's security state as the projection holds it; ok is false for
// an account it has not seen. TwoFactorRequiredBy is nil. Safe for concurrent use.
func (db *DB) Security(ctx context.Context, accountID string) (st domain.SecurityState, ok bool, err error) {
	state, ok, err := lookup(ctx, db, "security of "+accountID, `SELECT state FROM security_state WHERE account_id = ?`,
		[]any{accountID}, scanString)
	if !ok || err != nil {
		return domain.SecurityState{}, false, err
	}
	if err := json.Unmarshal([]byte(state), &st); err != nil {
		return domain.SecurityState{}, false, fmt.Errorf("projections: security of %s: %w", accountID, err)
	}
	return st, true, nil
}

// StreamReader reads one stream of the log (eventstore.Store and domain.EventStore satisfy
// it): up to limit events with version >= fromVersion, in order; limit <= 0 means no limit.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error)
}

// securityPage is the page size SecurityAt reads the account stream with.
const securityPage = 500

// SecurityAt returns the security state of an account as it was at time at: the fold, with
// domain.FoldSecurity (the projection's reducer), of the account stream's events recorded
// (RecordedAt, the store's clock) at or before at. An account that did not exist then (or
// never) gives an error wrapping domain.ErrNotFound. TwoFactorRequiredBy is nil. It reads the
// log, not the read models, so it is exact whatever the projections' lag.
func SecurityAt(ctx context.Context, log StreamReader, accountID string, at time.Time) (domain.SecurityState, error) {
	stream := domain.AccountStream(accountID)
	var (
		fold    []byte
		st      domain.SecurityState
		version uint64
	)
	for {
		events, err := log.ReadStream(ctx, stream, version+1, securityPage)
		if err != nil {
			return domain.SecurityState{}, fmt.Errorf("projections: security of %s at %s: %w", accountID, at.Format(time.RFC3339), err)
		}
		for _, ev := range events {
			if ev.RecordedAt.After(at) {
				return finishSecurityAt(accountID, version, st)
			}
			if fold, st, err = domain.FoldSecurity(fold, ev); err != nil {
				return domain.SecurityState{}, fmt.Errorf("projections: security of %s: %w", accountID, err)
			}
			version = ev.Version
		}
		if len(events) < securityPage {
			return finishSecurityAt(accountID, version, st)
		}
	}
}

func finishSecurityAt(accountID string, version uint64, st domain.SecurityState) (domain.SecurityState, error) {
	if version == 0 {
		return domain.SecurityState{}, fmt.Errorf("projections: account %s: %w", accountID, domain.ErrNotFound)
	}
	return st, nil
}
