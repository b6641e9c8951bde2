package projections

import (
	"context"
	"database/sql"
	"errors"

	"github.com/vigil-auth/vigil/domain"
)

// ClientRef names the application a session or an activity came from: API.md's
// `client:{id, name}`.
type ClientRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func clientRef(id, name string) *ClientRef {
	if id == "" {
		return nil
	}
	return &ClientRef{ID: id, Name: name}
}

// clientSchema is the DDL of a projection's own table of client names, fed by
// ClientRegistered (each projection keeps its own, so that each can be rebuilt alone).
func clientSchema(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
		client_id TEXT PRIMARY KEY,
		name      TEXT NOT NULL
	) WITHOUT ROWID`
}

// clientRegistered makes a projection's reducer of ClientRegistered: it keeps the client's
// name in the projection's table of client names.
func clientRegistered[P any](table string) reducer[P] {
	query := `INSERT INTO ` + table + ` (client_id, name) VALUES (?, ?)
		ON CONFLICT (client_id) DO UPDATE SET name = excluded.name`
	return on(func(_ P, ctx context.Context, tx *sql.Tx, _ domain.Envelope, e domain.ClientRegistered) error {
		if inBatch(ctx, tx) {
			delete(stateOf(ctx, tx).clientNames, table+"\x00"+e.ClientID)
		}
		return txExec(ctx, tx, query, e.ClientID, e.Name)
	})
}

// clientName returns the name of a client: the built-in portal, or a registered one ("" when
// the id is empty or unknown).
func clientName(ctx context.Context, tx *sql.Tx, table, id string) (string, error) {
	switch id {
	case "":
		return "", nil
	case domain.PortalClientID:
		return domain.PortalClientName, nil
	}
	// Inside Applier.Apply the names looked up are remembered for the batch.
	var cache map[string]string
	if inBatch(ctx, tx) {
		st := stateOf(ctx, tx)
		if st.clientNames == nil {
			st.clientNames = map[string]string{}
		}
		cache = st.clientNames
		if name, ok := cache[table+"\x00"+id]; ok {
			return name, nil
		}
	}
	var name string
	err := txScan(ctx, tx, `SELECT name FROM `+table+` WHERE client_id = ?`, []any{id}, &name)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	if err == nil && cache != nil {
		cache[table+"\x00"+id] = name
	}
	return name, err
}
