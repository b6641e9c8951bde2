package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// SecurityName is the name (and checkpoint key) of the Security projection.
const SecurityName = "security"

// Security is the security state of every account (API.md's /me/security): password
// changed at, TOTP devices, passkeys, backup codes, 2FA on or off. Each event of an account
// stream is folded with domain.FoldSecurity, the Account aggregate's own reducer, which
// SecurityAt also uses for the state at a past time: one implementation for the live page,
// the audit's point-in-time view and the commands. TwoFactorRequiredBy is not part of it
// (the organisations' policy adds it).
type Security struct{}

var _ Projection = Security{}

// Name implements Projection.
func (Security) Name() string { return SecurityName }

// Schema implements Projection.
func (Security) Schema() []string {
	return []string{`CREATE TABLE IF NOT EXISTS security_state (
		account_id TEXT PRIMARY KEY,
		version    INTEGER NOT NULL, -- account stream version folded
		position   INTEGER NOT NULL, -- global position of that event
		fold       BLOB NOT NULL,    -- domain.FoldSecurity state (no secrets, no personal data)
		state      TEXT NOT NULL     -- JSON of domain.SecurityState
	) WITHOUT ROWID`}
}

// Apply implements Projection: it loads the account's fold state, folds the event and saves
// the result.
func (Security) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	accountID := streamID(ev.StreamID, domain.StreamPrefixAccount)
	if accountID == "" {
		return nil
	}
	var fold []byte
	err := txScan(ctx, tx, `SELECT fold FROM security_state WHERE account_id = ?`, []any{accountID}, &fold)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("security: load %s: %w", accountID, err)
	}
	next, st, err := domain.FoldSecurity(fold, ev)
	if err != nil {
		return fmt.Errorf("security: position %d: %w", ev.Position, err)
	}
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("security: %w", err)
	}
	err = txExec(ctx, tx, `INSERT INTO security_state (account_id, version, position, fold, state) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET version = excluded.version, position = excluded.position,
			fold = excluded.fold, state = excluded.state`,
		accountID, ev.Version, ev.Position, next, string(state))
	if err != nil {
		return fmt.Errorf("security: save %s: %w", accountID, err)
	}
	return nil
}

// Security returns the account's security state as the projection holds it; ok is false for
// an account it has not seen. TwoFactorRequiredBy is nil. Safe for concurrent use.
func (db *DB) Security(ctx context.Context, accountID string) (st domain.SecurityState, ok bool, err error) {
	var state string
	err = db.read.QueryRowContext(ctx, `SELECT state FROM security_state WHERE account_id = ?`, accountID).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.SecurityState{}, false, nil
	case err != nil:
		return domain.SecurityState{}, false, fmt.Errorf("projections: security of %s: %w", accountID, err)
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
