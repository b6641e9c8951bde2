package projections

import (
	"context"
	"database/sql"

	"github.com/vigil-auth/vigil/domain"
)

// Erasure (API.md "Personal data and erasure"): AccountErased makes every read model forget
// the account's personal values in the batch that applies it, well within the second the
// contract allows. Rows about the account go; rows about other accounts keep their facts but
// lose what identifies the erased person in them (the address, place and device of a
// delegate's or an admin's request). The read-model file runs with secure_delete, so the
// deleted bytes are overwritten, not left in free pages.
//
// Each projection's table lists domain.EventAccountErased with its own forget function, so a
// new projection that keeps personal data adds one line and one function beside them.

// erasedAccount is the account an AccountErased event ends: its stream's id.
func erasedAccount(ev domain.Envelope) string {
	return streamID(ev.StreamID, domain.StreamPrefixAccount)
}

// forget runs statements with the erased account's id bound to @id.
func forget(ctx context.Context, tx *sql.Tx, ev domain.Envelope, stmts ...string) error {
	id := erasedAccount(ev)
	if id == "" {
		return nil
	}
	for _, q := range stmts {
		if err := txExec(ctx, tx, q, sql.Named("id", id)); err != nil {
			return err
		}
	}
	return nil
}

// clearedPlace is the SET clause that blanks a row's address, place and device.
const clearedPlace = `ip = '', located = 0, city = '', region = '', country = '', country_code = '',
	latitude = 0, longitude = 0, asn = 0, as_org = ''`

// forgetAccount drops the account's activity rows, its remembered sessions and device
// names, and blanks the address, place and device of the rows where it acted for others.
func (Activity) forgetAccount(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if err := flushActivity(ctx, tx); err != nil { // the batch's rows first
		return err
	}
	return forget(ctx, tx, ev,
		`DELETE FROM activity WHERE account_id = @id`,
		`UPDATE activity SET `+clearedPlace+`, access_details = '' WHERE actor_account_id = @id`,
		`DELETE FROM activity_sessions WHERE account_id = @id OR actor_account_id = @id`,
		`DELETE FROM activity_devices WHERE account_id = @id`)
}

// forgetAccount drops the account's sessions and those it held acting for others.
func (p Sessions) forgetAccount(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if inBatch(ctx, tx) {
		if err := p.writeBatch(ctx, tx); err != nil { // the batch's rows first
			return err
		}
	}
	return forget(ctx, tx, ev, `DELETE FROM sessions WHERE account_id = @id OR actor_account_id = @id`)
}

// forgetAccount drops the person (email, factors, last sign-in) and their memberships: an
// erased account is no one's member any more.
func (Orgs) forgetAccount(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	return forget(ctx, tx, ev,
		`DELETE FROM org_people WHERE account_id = @id`,
		`DELETE FROM org_members WHERE account_id = @id`)
}
