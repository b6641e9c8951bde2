package sealed

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/vigil-auth/vigil/domain"
)

// MinServerKeyLen is the shortest server key accepted (<data-dir>/secret.key holds 32 random
// bytes).
const MinServerKeyLen = 32

// UnownedKeyID is the key of personal values in events that name no account and no typed
// identifier (DefaultOwner's last resort), so that they are still never in clear.
const UnownedKeyID = "unowned"

// AccountKeyID is the id of an account's data key: "account-<accountID>".
func AccountKeyID(accountID string) string { return domain.StreamPrefixAccount + accountID }

// DeriveKey derives a 32-byte key for one purpose from the server key (HKDF-SHA256, the
// purpose as info), so that each use of the server key has its own key and none can stand in
// for another. It refuses a server key shorter than MinServerKeyLen.
func DeriveKey(serverKey []byte, purpose string) ([]byte, error) {
	if len(serverKey) < MinServerKeyLen {
		return nil, fmt.Errorf("sealed: the server key has %d bytes, want at least %d", len(serverKey), MinServerKeyLen)
	}
	return hkdf.Key(sha256.New, serverKey, nil, "vigil/"+purpose, 32)
}

// Hasher computes keyed hashes (HMAC-SHA256 under keys derived from the server key) of
// identifiers, so that the log and the indexes can find an email again without holding it, or
// an unkeyed hash of it (which anyone could compute from a list of emails). It is safe for
// concurrent use.
type Hasher struct {
	email, identifier sync.Pool // of hash.Hash
}

// NewHasher derives the hashing keys from the server key.
func NewHasher(serverKey []byte) (*Hasher, error) {
	emailKey, err := DeriveKey(serverKey, "email-index/v1")
	if err != nil {
		return nil, err
	}
	idKey, err := DeriveKey(serverKey, "identifier-key/v1")
	if err != nil {
		return nil, err
	}
	h := &Hasher{}
	h.email.New = func() any { return hmac.New(sha256.New, emailKey) }
	h.identifier.New = func() any { return hmac.New(sha256.New, idKey) }
	return h, nil
}

// NormalizeIdentifier is the form hashed: trimmed and lower-cased, the first step of
// domain/validate's Email, so that an email typed at sign-in and the account's normalised email
// hash alike.
func NormalizeIdentifier(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func sum(p *sync.Pool, s string) []byte {
	m := p.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(NormalizeIdentifier(s)))
	out := m.Sum(nil)
	p.Put(m)
	return out
}

// EmailIndex is the key of an email in the uniqueness index: lowercase hex of the HMAC of the
// normalised email (64 characters).
func (h *Hasher) EmailIndex(email string) string { return hex.EncodeToString(sum(&h.email, email)) }

// IdentifierKeyID is the id of the data key that seals events naming a typed identifier (an
// email at sign-in) that matches no account: "identifier-" and 32 hex characters of a keyed
// hash of the normalised identifier (under another key than EmailIndex, so that the two
// cannot be linked). Erasing an account destroys the identifier keys of its emails too.
func (h *Hasher) IdentifierKeyID(identifier string) string {
	return "identifier-" + hex.EncodeToString(sum(&h.identifier, identifier)[:16])
}
