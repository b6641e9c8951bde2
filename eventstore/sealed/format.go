package sealed

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value (version 1 of the representation).
const Prefix = "vigil:sealed:v1:"

// Erased is what a personal value whose key was destroyed reads as (the JSON string
// "[erased]", or the plain string for Metadata.IP and Metadata.UserAgent).
const Erased = "[erased]"

// maxKeyIDLen bounds a key id: ids travel in every sealed value.
const maxKeyIDLen = 200

const (
	nonceSize = 12
	tagSize   = 16
)

// Kinds of sealed member, part of the associated data.
const (
	kindData     = "data"
	kindMetadata = "metadata"
)

// Metadata member names, as in domain.Metadata's JSON.
const (
	memberIP        = "ip"
	memberUserAgent = "user_agent"
)

var b64 = base64.RawURLEncoding

// ValidKeyID reports whether id may name a data key: 1 to 200 characters of A-Z a-z 0-9 . _ -.
func ValidKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sealedValue is a parsed sealed string.
type sealedValue struct {
	keyID   string
	payload []byte // nonce || ciphertext || tag; empty when erased on arrival
}

// parseSealed parses s, which must start with Prefix. An error means s is not a well-formed
// sealed value (tampering, since only this package writes the prefix in personal members).
func parseSealed(s string) (sealedValue, error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return sealedValue{}, errors.New("no sealed prefix")
	}
	keyID, enc, ok := strings.Cut(rest, ":")
	if !ok {
		return sealedValue{}, errors.New("no key id separator")
	}
	if !ValidKeyID(keyID) {
		return sealedValue{}, fmt.Errorf("bad key id %q", truncate(keyID))
	}
	if enc == "" {
		return sealedValue{keyID: keyID}, nil
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return sealedValue{}, fmt.Errorf("payload is not unpadded base64url: %w", err)
	}
	if len(payload) < nonceSize+tagSize {
		return sealedValue{}, fmt.Errorf("payload of %d bytes is shorter than nonce and tag", len(payload))
	}
	return sealedValue{keyID: keyID, payload: payload}, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// erasedOnArrival is the sealed form of a value appended under a destroyed key.
func erasedOnArrival(keyID string) string { return Prefix + keyID + ":" }

// associatedData binds a sealed value to its event, member and key (see the package doc).
func associatedData(eventID, kind, member, keyID string) []byte {
	ad := make([]byte, 0, len("vigil:sealed:v1")+len(eventID)+len(kind)+len(member)+len(keyID)+8)
	ad = append(ad, "vigil:sealed:v1"...)
	for _, f := range [...]string{eventID, kind, member, keyID} {
		ad = binary.AppendUvarint(ad, uint64(len(f)))
		ad = append(ad, f...)
	}
	return ad
}

// sealValue encrypts plaintext (a member's JSON) and returns the sealed string.
func sealValue(aead cipher.AEAD, keyID, eventID, kind, member string, plaintext []byte) string {
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
	buf = aead.Seal(buf, buf[:nonceSize], plaintext, associatedData(eventID, kind, member, keyID))
	var sb strings.Builder
	sb.Grow(len(Prefix) + len(keyID) + 1 + b64.EncodedLen(len(buf)))
	sb.WriteString(Prefix)
	sb.WriteString(keyID)
	sb.WriteByte(':')
	sb.WriteString(b64.EncodeToString(buf))
	return sb.String()
}

// openValue decrypts v; an error means the value was altered or moved.
func openValue(aead cipher.AEAD, v sealedValue, eventID, kind, member string) ([]byte, error) {
	return aead.Open(nil, v.payload[:nonceSize], v.payload[nonceSize:], associatedData(eventID, kind, member, v.keyID))
}
