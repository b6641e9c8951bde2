package sealed

import (
	"encoding/json"
	"strings"

	"github.com/vigil-auth/vigil/domain"
)

// OwnerFunc names the data key that seals an event's personal values (see Config.Owner).
type OwnerFunc func(ev domain.EventData, stream string) (keyID string, ok bool)

// PersonalFunc lists the top-level data members an event type declares personal (see
// Config.Personal).
type PersonalFunc func(eventType string, schemaVersion int) (personal []string)

// DefaultOwner seals an event under, in this order: the account of an account-<id> stream;
// Metadata.SubjectAccountID; the identifier key (Hasher.IdentifierKeyID) of the first of
// identifierMembers that the data holds as a non-empty JSON string (a typed email that matched
// no account, e.g. "attempted_email"); the account of an account, admin or delegate actor (for
// events of an org or client, whose IP is the actor's). Otherwise it answers false and the
// Store uses UnownedKeyID.
func DefaultOwner(h *Hasher, identifierMembers ...string) OwnerFunc {
	return func(ev domain.EventData, stream string) (string, bool) {
		if id, ok := strings.CutPrefix(stream, domain.StreamPrefixAccount); ok && id != "" {
			return AccountKeyID(id), true
		}
		if ev.Metadata.SubjectAccountID != "" {
			return AccountKeyID(ev.Metadata.SubjectAccountID), true
		}
		if len(identifierMembers) > 0 {
			if v := stringMember(ev.Data, identifierMembers); v != "" {
				return h.IdentifierKeyID(v), true
			}
		}
		switch ev.Metadata.Actor.Type {
		case domain.ActorAccount, domain.ActorAdmin, domain.ActorDelegate:
			if ev.Metadata.Actor.ID != "" {
				return AccountKeyID(ev.Metadata.Actor.ID), true
			}
		}
		return "", false
	}
}

// stringMember returns the first of names that data holds as a non-empty string.
func stringMember(data json.RawMessage, names []string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	for _, n := range names {
		var s string
		if raw, ok := obj[n]; ok && json.Unmarshal(raw, &s) == nil && strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}
