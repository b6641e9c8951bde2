package credential

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Purposes of link tokens (the links Vigil mails: API.md "Mail, recovery and account
// protection").
const (
	LinkVerifyEmail   = "verify-email"
	LinkResetPassword = "reset-password"
	LinkNotMe         = "not-me"
)

// ErrInvalidLinkToken: a link token that is malformed, forged or made for another purpose.
var ErrInvalidLinkToken = errors.New("credential: invalid link token")

// LinkClaims is what a link token says: for which Purpose, which account, which request or
// event (Ref: the request id of a verification or reset, the event id of a "this wasn't me"
// link) and when it was issued (to the second; expiry is the caller's rule).
type LinkClaims struct {
	Purpose   string
	AccountID string
	Ref       string
	IssuedAt  time.Time
}

// LinkToken returns the token of c: base64url of "purpose|account|ref|unix seconds", a dot,
// and base64url of its HMAC-SHA256 under a key derived from the server key. Nothing needs to
// be stored for it to be checked (the mail outbox re-derives the token of a logged request;
// the log keeps only HashLinkToken of it so that it works once). Rotating the server key
// invalidates the links in flight.
func (k *Keyring) LinkToken(c LinkClaims) string {
	payload := strings.Join([]string{c.Purpose, c.AccountID, c.Ref, strconv.FormatInt(c.IssuedAt.Unix(), 10)}, "|")
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(k.linkMAC(payload))
}

// OpenLinkToken checks token's MAC in constant time and that it was made for purpose, and
// returns its claims; ErrInvalidLinkToken otherwise. It does not check expiry or use.
func (k *Keyring) OpenLinkToken(purpose, token string) (LinkClaims, error) {
	if len(token) > 512 {
		return LinkClaims{}, ErrInvalidLinkToken
	}
	p64, m64, ok := strings.Cut(token, ".")
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, k.linkMAC(string(payload))) {
		return LinkClaims{}, ErrInvalidLinkToken
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 4 || parts[0] != purpose || parts[1] == "" || parts[2] == "" {
		return LinkClaims{}, ErrInvalidLinkToken
	}
	unix, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return LinkClaims{}, ErrInvalidLinkToken
	}
	return LinkClaims{Purpose: parts[0], AccountID: parts[1], Ref: parts[2], IssuedAt: time.Unix(unix, 0).UTC()}, nil
}

func (k *Keyring) linkMAC(payload string) []byte {
	m := hmac.New(sha256.New, k.indexKey)
	m.Write([]byte("link token v1"))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// HashLinkToken is what the log keeps of a link token: its hex SHA-256.
func HashLinkToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
