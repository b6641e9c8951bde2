package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

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
// the result. Inside Applier.Apply the batch's states are kept in memory, the last one per
// account written by writeBatch.
func (Security) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	accountID := streamID(ev.StreamID, domain.StreamPrefixAccount)
	if accountID == "" {
		return nil
	}
	batch := inBatch(ctx, tx)
	st := stateOf(ctx, tx)
	var fold []byte
	if prev := st.security[accountID]; batch && prev != nil {
		fold = prev.fold
	} else {
		err := txScan(ctx, tx, `SELECT fold FROM security_state WHERE account_id = ?`, []any{accountID}, &fold)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("security: load %s: %w", accountID, err)
		}
	}
	next, state, err := domain.FoldSecurity(fold, ev)
	if err != nil {
		return fmt.Errorf("security: position %d: %w", ev.Position, err)
	}
	row := &securityRow{account: accountID, version: ev.Version, position: ev.Position, fold: next, state: state}
	if !batch {
		return writeSecurity(ctx, tx, []*securityRow{row})
	}
	if st.security == nil {
		st.security = map[string]*securityRow{}
	}
	st.security[accountID] = row
	return nil
}

// securityRow is an account's row of security_state.
type securityRow struct {
	account           string
	version, position uint64
	fold              []byte
	state             domain.SecurityState
}

// writeBatch writes the last state of every account the batch changed.
func (Security) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	if len(st.security) == 0 {
		return nil
	}
	rows := make([]*securityRow, 0, len(st.security))
	for _, r := range st.security {
		rows = append(rows, r)
	}
	st.security = nil
	slices.SortFunc(rows, func(a, b *securityRow) int { return strings.Compare(a.account, b.account) })
	return writeSecurity(ctx, tx, rows)
}

// securityChunk is how many rows one INSERT of security_state writes.
const securityChunk = 256

// writeSecurity upserts rows, securityChunk per statement.
func writeSecurity(ctx context.Context, tx *sql.Tx, rows []*securityRow) error {
	for len(rows) > 0 {
		n := min(len(rows), securityChunk)
		args := make([]any, 0, n*5)
		for _, r := range rows[:n] {
			state, err := json.Marshal(r.state)
			if err != nil {
				return fmt.Errorf("security: %w", err)
			}
			args = append(args, r.account, r.version, r.position, r.fold, string(state))
		}
		err := txExec(ctx, tx, `INSERT INTO security_state (account_id, version, position, fold, state) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")+`
		ON CONFLICT (account_id) DO UPDATE SET version = excluded.version, position = excluded.position,
			fold = excluded.fold, state = excluded.state`, args...)
		if err != nil {
			return fmt.Errorf("security: save: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}
