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
	a := &Account{s: accountState{ID: accountID}}
	if len(state) > 0 {
		if err := json.Unmarshal(state, &a.s); err != nil {
			return nil, SecurityState{}, fmt.Errorf("fold security of account %s: bad state: %w", accountID, err)
		}
		if a.s.ID != accountID {
			return nil, SecurityState{}, fmt.Errorf("fold security of account %s: state belongs to account %s", accountID, a.s.ID)
		}
	}
	if a.s.Version > 0 && ev.Version <= a.s.Version {
		return state, a.Security(), nil
	}
	if err := a.replay([]Envelope{ev}); err != nil {
		return nil, SecurityState{}, fmt.Errorf("fold security: %w", err)
	}
	s := &a.s
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
	if next, err = json.Marshal(s); err != nil {
		return nil, SecurityState{}, fmt.Errorf("fold security of account %s: %w", accountID, err)
	}
	return next, a.Security(), nil
}
