package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

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
//
// Unlike the other projections it has no table of reducers by event type: it folds every
// event of an account stream (the fold decides what each type changes, and the row keeps the
// stream version folded), and nothing else.
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
