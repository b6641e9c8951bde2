package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sealed"
)

// Recipient is who receives an account's mail, as the account's events say now.
type Recipient struct {
	AccountID           string
	Email               string
	FirstName, LastName string
	// Locale is the profile's BCP 47 tag ("" when unset).
	Locale string
	// Erased: the account was erased; it gets no mail.
	Erased bool
}

// ErrNoAccount: the account has no events (the outbox skips its mail).
var ErrNoAccount = errors.New("mail: no such account")

// Recipients looks up an account's recipient. The outbox calls it once per mail, so the
// answer reflects the account's state when the mail goes out (an account erased meanwhile
// gets nothing).
type Recipients interface {
	Recipient(ctx context.Context, accountID string) (Recipient, error)
}

// StreamReader is the part of the event log StoreRecipients reads.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error)
}

// StoreRecipients reads the recipient from the account's stream, through the sealed store
// (personal values opened, "[erased]" after an erasure): AccountRegistered, EmailChanged,
// NameChanged, ProfileUpdated and AccountErased; other events are ignored, so it reads any
// account whatever events later issues add to its stream.
type StoreRecipients struct{ Log StreamReader }

// Recipient implements Recipients.
func (s StoreRecipients) Recipient(ctx context.Context, accountID string) (Recipient, error) {
	evs, err := s.Log.ReadStream(ctx, domain.AccountStream(accountID), 1, 0)
	if err != nil {
		return Recipient{}, fmt.Errorf("mail: read account %s: %w", accountID, err)
	}
	if len(evs) == 0 {
		return Recipient{}, fmt.Errorf("%w: %s", ErrNoAccount, accountID)
	}
	r := Recipient{AccountID: accountID}
	for _, env := range evs {
		if env.Type == domain.EventAccountErased {
			// Every personal value before it reads "[erased]": nothing to decode.
			return Recipient{AccountID: accountID, Erased: true}, nil
		}
	}
	for _, env := range evs {
		switch env.Type {
		case domain.EventAccountRegistered, domain.EventEmailChanged, domain.EventNameChanged,
			domain.EventProfileUpdated:
		default:
			continue
		}
		e, err := domain.DecodeEvent(env)
		if err != nil {
			return Recipient{}, fmt.Errorf("mail: account %s: %w", accountID, err)
		}
		switch e := e.(type) {
		case domain.AccountRegistered:
			r.Email, r.FirstName, r.LastName = e.Email, e.FirstName, e.LastName
		case domain.EmailChanged:
			r.Email = e.NewEmail
		case domain.NameChanged:
			r.FirstName, r.LastName = e.FirstName, e.LastName
		case domain.ProfileUpdated:
			r.Locale = e.Profile.Locale
		}
	}
	if r.Email == sealed.Erased || strings.TrimSpace(r.Email) == "" {
		r.Erased = true
	}
	return r, nil
}
