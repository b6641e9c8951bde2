package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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
// (personal values opened): AccountRegistered, EmailChanged, NameChanged, ProfileUpdated and
// AccountErased; other events are ignored, so it reads any account whatever events later
// issues add to its stream. It remembers what it folded (up to cacheSize accounts) and reads
// only the events appended since, so a long stream is not read again for every mail.
// Safe for concurrent use.
type StoreRecipients struct {
	log   StreamReader
	mu    sync.Mutex
	cache map[string]folded
}

type folded struct {
	r       Recipient
	version uint64
}

const cacheSize = 10000

// NewStoreRecipients returns the Recipients of the log.
func NewStoreRecipients(log StreamReader) *StoreRecipients {
	return &StoreRecipients{log: log, cache: map[string]folded{}}
}

// Recipient implements Recipients.
func (s *StoreRecipients) Recipient(ctx context.Context, accountID string) (Recipient, error) {
	s.mu.Lock()
	c, known := s.cache[accountID]
	s.mu.Unlock()
	if !known {
		c.r = Recipient{AccountID: accountID}
	}
	evs, err := s.log.ReadStream(ctx, domain.AccountStream(accountID), c.version+1, 0)
	if err != nil {
		return Recipient{}, fmt.Errorf("mail: read account %s: %w", accountID, err)
	}
	if !known && len(evs) == 0 {
		return Recipient{}, fmt.Errorf("%w: %s", ErrNoAccount, accountID)
	}
	if len(evs) == 0 {
		return c.r, nil
	}
	if err := fold(&c.r, evs); err != nil {
		return Recipient{}, err
	}
	c.version = evs[len(evs)-1].Version
	s.mu.Lock()
	if len(s.cache) >= cacheSize {
		clear(s.cache)
	}
	s.cache[accountID] = c
	s.mu.Unlock()
	return c.r, nil
}

// fold applies an account's events to r.
func fold(r *Recipient, evs []domain.Envelope) error {
	for _, env := range evs {
		if env.Type == domain.EventAccountErased {
			// Every personal value before it reads "[erased]": nothing to decode, and nothing
			// after it is mailed.
			*r = Recipient{AccountID: r.AccountID, Erased: true}
			return nil
		}
	}
	if r.Erased {
		return nil
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
			return fmt.Errorf("mail: account %s: %w", r.AccountID, err)
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
	return nil
}
