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
// the result. Inside Applier.Apply the batch's states are kept in memory, decoded (a
// domain.SecurityFold), the last one per account encoded and written by writeBatch.
func (Security) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	accountID := streamID(ev.StreamID, domain.StreamPrefixAccount)
	if accountID == "" {
		return nil
	}
	if !inBatch(ctx, tx) {
		fold, err := loadFold(ctx, tx, accountID)
		if err != nil {
			return err
		}
		next, state, err := domain.FoldSecurity(fold, ev)
		if err != nil {
			return fmt.Errorf("security: position %d: %w", ev.Position, err)
		}
		return writeSecurity(ctx, tx, []*securityRow{{account: accountID, version: ev.Version, position: ev.Position, fold: next, state: state}})
	}
	st := stateOf(ctx, tx)
	folds := foldsOf(ctx)
	var f *domain.SecurityFold
	if prev := st.security[accountID]; prev != nil {
		f = prev.folder
	} else if f = folds.get(accountID); f == nil {
		fold, err := loadFold(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if f, err = domain.NewSecurityFold(accountID, fold); err != nil {
			return fmt.Errorf("security: position %d: %w", ev.Position, err)
		}
	}
	// The fold is the account's in this batch (and in the cache) from here on: a failed fold
	// fails the batch, whose state and cache are then dropped with it.
	folds.put(accountID, f)
	// The event as the page decoded it ahead (a rebuild's), else decoded by the fold; an
	// event that does not decode is the fold's to report.
	e, derr := decode(ctx, ev)
	if derr != nil {
		e = nil
	}
	state, err := f.FoldDecoded(ev, e)
	if err != nil {
		return fmt.Errorf("security: position %d: %w", ev.Position, err)
	}
	if st.security == nil {
		st.security = map[string]*securityRow{}
	}
	st.security[accountID] = &securityRow{account: accountID, version: ev.Version, position: ev.Position, folder: f, state: state}
	return nil
}

// loadFold reads the account's fold state (nil before its first row).
func loadFold(ctx context.Context, tx *sql.Tx, accountID string) ([]byte, error) {
	var fold []byte
	err := txScan(ctx, tx, `SELECT fold FROM security_state WHERE account_id = ?`, []any{accountID}, &fold)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("security: load %s: %w", accountID, err)
	}
	return fold, nil
}

// securityRow is an account's row of security_state: its fold state encoded (fold), or
// decoded (folder, encoded when the row is written).
type securityRow struct {
	account           string
	version, position uint64
	fold              []byte
	folder            *domain.SecurityFold
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
	return writeSecurity(ctx, tx, rows)
}

// foldCache keeps, across the batches of one Applier (a rebuild's security lane: one
// goroutine, the only writer of its file), each account's decoded fold: a batch then reads no
// row back and decodes no state. A batch that fails ends the rebuild, so the memory never
// runs ahead of the file.
type foldCache struct {
	m map[string]*domain.SecurityFold
}

type foldCacheKey struct{}

// foldCacheSize bounds a fold cache (a decoded fold is about a kilobyte); a full one starts
// again.
const foldCacheSize = 1 << 17

// withFoldCache returns ctx with a fold cache (see foldCache).
func withFoldCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, foldCacheKey{}, &foldCache{m: map[string]*domain.SecurityFold{}})
}

// foldsOf returns the fold cache of ctx, nil without one.
func foldsOf(ctx context.Context) *foldCache {
	c, _ := ctx.Value(foldCacheKey{}).(*foldCache)
	return c
}

func (c *foldCache) get(account string) *domain.SecurityFold {
	if c == nil {
		return nil
	}
	return c.m[account]
}

func (c *foldCache) put(account string, fold *domain.SecurityFold) {
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
			fold := r.fold
			if r.folder != nil {
				if fold, err = r.folder.Encode(); err != nil {
					return fmt.Errorf("security: %w", err)
				}
			}
			args = append(args, r.account, r.version, r.position, fold, string(state))
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
