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
	folds := foldsOf(ctx)
	if prev := st.security[accountID]; batch && prev != nil {
		fold = prev.fold
	} else if f, ok := folds.get(accountID); batch && ok {
		fold = f
	} else {
		err := txScan(ctx, tx, `SELECT fold FROM security_state WHERE account_id = ?`, []any{accountID}, &fold)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("security: load %s: %w", accountID, err)
		}
		if batch {
			folds.put(accountID, fold)
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
	if len(st.security) == 0 || st.keep { // kept for a later batch (Applier.carry)
		return nil
	}
	rows := make([]*securityRow, 0, len(st.security))
	for _, r := range st.security {
		rows = append(rows, r)
	}
	st.security = nil
	slices.SortFunc(rows, func(a, b *securityRow) int { return strings.Compare(a.account, b.account) })
	if err := writeSecurity(ctx, tx, rows); err != nil {
		return err
	}
	folds := foldsOf(ctx)
	for _, r := range rows {
		folds.put(r.account, r.fold)
	}
	return nil
}

// foldCache remembers, across the batches of one rebuild's security lane (one goroutine, the
// only writer of its file), the fold each account's row holds: a batch then reads no row
// back. A batch that fails ends the rebuild, so the memory never runs ahead of the file.
type foldCache struct{ m map[string][]byte }

type foldCacheKey struct{}

// foldCacheSize bounds a fold cache; a full one starts again.
const foldCacheSize = 1 << 18

// withFoldCache returns ctx with a fold cache (see foldCache).
func withFoldCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, foldCacheKey{}, &foldCache{m: map[string][]byte{}})
}

// foldsOf returns the fold cache of ctx, nil without one.
func foldsOf(ctx context.Context) *foldCache {
	c, _ := ctx.Value(foldCacheKey{}).(*foldCache)
	return c
}

func (c *foldCache) get(account string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	f, ok := c.m[account]
	return f, ok
}

func (c *foldCache) put(account string, fold []byte) {
	if c == nil {
		return
	}
	if len(c.m) >= foldCacheSize {
		clear(c.m)
	}
	c.m[account] = fold
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
