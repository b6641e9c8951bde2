package ephemeral

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain/throttle"
)

// ErrCeremonyInvalid: the ceremony id is unknown, expired, already used (every ceremony is
// single-use, whatever its outcome), kept by another instance, or was begun for another
// purpose or another session. The user must start the ceremony again. (command.ErrCeremonyInvalid
// is this error.)
var ErrCeremonyInvalid = errors.New("passkey ceremony invalid or expired")

// CeremonyKind says what a passkey ceremony was begun for.
type CeremonyKind string

// Ceremony kinds.
const (
	CeremonyRegistration CeremonyKind = "registration" // BeginPasskeyRegistration
	CeremonyLogin        CeremonyKind = "login"        // BeginPasskeyLogin
	CeremonyReauth       CeremonyKind = "reauth"       // BeginPasskeyReauth
)

// Ceremony is the server-side state of a WebAuthn ceremony between its options and the
// browser's answer. ID is an opaque 256-bit random string; the challenge never leaves the
// server except inside the options.
type Ceremony struct {
	ID        string
	Kind      CeremonyKind
	Challenge []byte
	// AccountID: the account of a registration or re-authentication, or of the login ticket;
	// empty for a usernameless sign-in.
	AccountID string
	// SessionID: the session that began a registration or re-authentication.
	SessionID string
	// Name: the name of the passkey being registered.
	Name string
	// UserVerification is the requirement the options stated ("required" or "preferred").
	UserVerification string
	// Ticket is the login ticket of a second-factor sign-in (with its state when the
	// ceremony began: its client, email, tries and expiry); empty for a usernameless one.
	Ticket LoginTicket
	// CreatedAt is when the options were given; the ceremony is void from ExpiresAt on.
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CeremonyStore keeps the WebAuthn ceremonies in progress. Implementations must be safe for
// concurrent use.
//
// MemoryCeremonyStore keeps them in the instance's memory: with several instances the
// answer must reach the instance that gave the options (sticky sessions), or the ceremony
// is unknown there (ErrCeremonyInvalid) and the user starts again. The shared store is
// sharedstate.Ceremonies, in NATS JetStream.
type CeremonyStore interface {
	// Put stores a new ceremony; now is the current time. A store that is full may refuse
	// with a *throttle.Error.
	Put(ctx context.Context, c Ceremony, now time.Time) error
	// Take removes ceremony id and returns it. An unknown, already taken or (at now) expired
	// ceremony gives ErrCeremonyInvalid. Of concurrent callers with one id, at most one gets
	// the ceremony: ceremonies are single-use whatever the outcome of the answer.
	Take(ctx context.Context, id string, now time.Time) (Ceremony, error)
	// Prune drops ceremonies expired at now.
	Prune(ctx context.Context, now time.Time)
}

// DefaultMaxCeremonies bounds a MemoryCeremonyStore: usernameless sign-in options can be
// asked for without credentials, so the store must not grow without limit.
const DefaultMaxCeremonies = 100_000

// MemoryCeremonyStore is the in-memory CeremonyStore (per instance, see CeremonyStore). It
// holds at most its limit of unexpired ceremonies (Put answers a *throttle.Error until the
// oldest expires) and drops expired ones as it goes. The zero value is not usable; call
// NewMemoryCeremonyStore. Safe for concurrent use.
type MemoryCeremonyStore struct {
	mu         sync.Mutex
	max        int
	ceremonies map[string]Ceremony
	lastPrune  time.Time
}

var _ CeremonyStore = (*MemoryCeremonyStore)(nil)

// NewMemoryCeremonyStore returns an empty store holding at most DefaultMaxCeremonies.
func NewMemoryCeremonyStore() *MemoryCeremonyStore {
	return NewMemoryCeremonyStoreWithLimit(DefaultMaxCeremonies)
}

// NewMemoryCeremonyStoreWithLimit returns an empty store holding at most limit ceremonies
// (at least 1).
func NewMemoryCeremonyStoreWithLimit(limit int) *MemoryCeremonyStore {
	return &MemoryCeremonyStore{max: max(limit, 1), ceremonies: map[string]Ceremony{}}
}

// Put implements CeremonyStore.
func (m *MemoryCeremonyStore) Put(_ context.Context, c Ceremony, now time.Time) error {
	c = c.clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.ceremonies) >= m.max || now.Sub(m.lastPrune) >= time.Minute {
		m.prune(now)
	}
	if len(m.ceremonies) >= m.max {
		oldest := time.Time{}
		for _, x := range m.ceremonies {
			if oldest.IsZero() || x.ExpiresAt.Before(oldest) {
				oldest = x.ExpiresAt
			}
		}
		return &throttle.Error{RetryAfter: max(oldest.Sub(now), time.Second)}
	}
	m.ceremonies[c.ID] = c
	return nil
}

// Take implements CeremonyStore.
func (m *MemoryCeremonyStore) Take(_ context.Context, id string, now time.Time) (Ceremony, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.ceremonies[id]
	if !ok {
		return Ceremony{}, ErrCeremonyInvalid
	}
	delete(m.ceremonies, id)
	if !now.Before(c.ExpiresAt) {
		return Ceremony{}, ErrCeremonyInvalid
	}
	return c, nil
}

// Prune implements CeremonyStore.
func (m *MemoryCeremonyStore) Prune(_ context.Context, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prune(now)
}

func (m *MemoryCeremonyStore) prune(now time.Time) {
	for id, c := range m.ceremonies {
		if !now.Before(c.ExpiresAt) {
			delete(m.ceremonies, id)
		}
	}
	m.lastPrune = now
}

// Len returns the number of ceremonies held (expired ones not yet dropped included).
func (m *MemoryCeremonyStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ceremonies)
}

func (c Ceremony) clone() Ceremony {
	c.Challenge = slices.Clone(c.Challenge)
	c.Ticket.Methods = slices.Clone(c.Ticket.Methods)
	return c
}
