package domain

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vigil-auth/vigil/domain/credential"
)

// FoldSecurity folds one event of an account stream into the account's security state with
// the Account aggregate's own per-event apply: the reducer that commands, Rebuild and
// command.Service.Security use, so the security read model and the point-in-time view of an audit
// ("the state at 14:02") cannot drift from what the commands decide on. It is a pure
// function, safe for concurrent use.
//
// state is the opaque fold state returned by the previous call for the same account (nil or
// empty before the first event). It is JSON holding only what the security state needs:
// password hashes, sealed TOTP secrets, backup code hashes, passkey key material and
// personal data (email, names, profile) are stripped, so it may be stored in a read model.
// FoldSecurity returns the next fold state and the security state after ev, as
// (*Account).Security gives it; TwoFactorRequiredBy is left nil (it comes from the
// organisations' policy, not from the account stream).
//
// ev must continue the stream: its version must be the last folded version + 1 (the first
// must be AccountRegistered at version 1). An event already folded (version at or below the
// last) returns state unchanged, so redelivery is harmless. A gap, an event of another
// stream kind, an unknown event type or malformed state is an error.
func FoldSecurity(state []byte, ev Envelope) (next []byte, sec SecurityState, err error) {
	accountID, ok := strings.CutPrefix(ev.StreamID, StreamPrefixAccount)
	if !ok || accountID == "" {
		return nil, SecurityState{}, fmt.Errorf("fold security of %s: %w", ev.StreamID, errNotAccountEvent)
	}
	f, err := NewSecurityFold(accountID, state)
	if err != nil {
		return nil, SecurityState{}, err
	}
	if f.a.s.Version > 0 && ev.Version <= f.a.s.Version {
		return state, f.a.Security(), nil
	}
	if sec, err = f.Fold(ev); err != nil {
		return nil, SecurityState{}, err
	}
	if next, err = f.Encode(); err != nil {
		return nil, SecurityState{}, err
	}
	return next, sec, nil
}

// A SecurityFold is FoldSecurity's state decoded, for a caller that folds many events of an
// account in a row (a rebuild keeps one per account between its batches): Fold then Encode
// give what FoldSecurity gives, without decoding and encoding the state at every event (6 %
// of a rebuild's CPU, issue 16's profile). Not safe for concurrent use.
type SecurityFold struct{ a *Account }

// NewSecurityFold decodes state, FoldSecurity's fold state of account accountID (nil or
// empty before the account's first event).
func NewSecurityFold(accountID string, state []byte) (*SecurityFold, error) {
	a := &Account{s: accountState{ID: accountID}}
	if len(state) > 0 {
		if err := json.Unmarshal(state, &a.s); err != nil {
			return nil, fmt.Errorf("fold security of account %s: bad state: %w", accountID, err)
		}
		if a.s.ID != accountID {
			return nil, fmt.Errorf("fold security of account %s: state belongs to account %s", accountID, a.s.ID)
		}
	}
	return &SecurityFold{a: a}, nil
}

// Fold folds ev, the account stream's next event, as FoldSecurity does, and returns the
// security state after it. An event already folded changes nothing; a gap, an event of
// another stream or an unknown type is an error, after which the fold is not to be used
// again (decode the last state encoded instead).
func (f *SecurityFold) Fold(ev Envelope) (SecurityState, error) {
	return f.FoldDecoded(ev, nil)
}

// FoldDecoded is Fold with ev's data already decoded into e (what DecodeEvent returned for
// ev, which the fold only reads); a nil e decodes it here.
func (f *SecurityFold) FoldDecoded(ev Envelope, e Event) (SecurityState, error) {
	if id, ok := strings.CutPrefix(ev.StreamID, StreamPrefixAccount); !ok || id != f.a.s.ID {
		return SecurityState{}, fmt.Errorf("fold security of account %s: event of %s: %w", f.a.s.ID, ev.StreamID, errNotAccountEvent)
	}
	if f.a.s.Version > 0 && ev.Version <= f.a.s.Version {
		return f.a.Security(), nil
	}
	if err := f.a.replayOne(ev, e); err != nil {
		return SecurityState{}, fmt.Errorf("fold security: %w", err)
	}
	s := &f.a.s
	s.Email, s.FirstName, s.LastName, s.Profile, s.PasswordHash = "", "", "", Profile{}, ""
	for i := range s.TOTP {
		s.TOTP[i].Secret = credential.SealedSecret{}
	}
	for i := range s.Passkeys {
		p := &s.Passkeys[i]
		p.CredentialID, p.PublicKey, p.AAGUID, p.Transports = nil, nil, nil, nil
	}
	if s.Backup != nil {
		s.Backup.Hashes = nil
	}
	return f.a.Security(), nil
}

// Encode returns the fold state, as FoldSecurity returns it.
func (f *SecurityFold) Encode() ([]byte, error) {
	b, err := json.Marshal(&f.a.s)
	if err != nil {
		return nil, fmt.Errorf("fold security of account %s: %w", f.a.s.ID, err)
	}
	return b, nil
}
