// Package keystore holds the data keys of eventstore/sealed outside the event log: SQLite
// (OpenSQLite, the embedded deployment's <data-dir>/keys.db) or KurrentDB (OpenKurrentDB, a
// key stream per key). Both implement sealed.KeyStore.
//
// Keys are stored wrapped: AES-256-GCM under a key derived from the server key
// (sealed.DeriveKey, purpose "keystore-wrap/v1"), with the key id as associated data, so a copy
// of the key store alone opens nothing and a wrapped key moved to another id does not unwrap.
// A check value wrapped the same way tells a wrong server key at open
// (sealed.ErrWrongServerKey: "the server key does not open the key store").
package keystore

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"crypto/aes"

	"github.com/vigil-auth/vigil/eventstore/sealed"
)

const (
	wrapVersion = 1
	nonceSize   = 12
	// checkID is the id the check value is wrapped under; no key id can be empty.
	checkID = ""
)

// checkPlain is the plaintext of the check value.
var checkPlain = []byte("vigil key store check v1")

// wrapper wraps and unwraps data keys under the key derived from the server key.
type wrapper struct{ aead cipher.AEAD }

func newWrapper(serverKey []byte) (*wrapper, error) {
	kek, err := sealed.DeriveKey(serverKey, "keystore-wrap/v1")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &wrapper{aead}, nil
}

func wrapAD(keyID string) []byte { return append([]byte("vigil keystore v1\x00"), keyID...) }

// wrap returns version || nonce || AES-GCM(key).
func (w *wrapper) wrap(keyID string, key []byte) []byte {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(key)+w.aead.Overhead())
	out[0] = wrapVersion
	_, _ = rand.Read(out[1:]) // never fails (Go 1.24+)
	return w.aead.Seal(out, out[1:1+nonceSize], key, wrapAD(keyID))
}

var errUnwrap = errors.New("keystore: a wrapped key does not unwrap")

func (w *wrapper) unwrap(keyID string, blob []byte) ([]byte, error) {
	if len(blob) < 1+nonceSize+w.aead.Overhead() || blob[0] != wrapVersion {
		return nil, errUnwrap
	}
	key, err := w.aead.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], wrapAD(keyID))
	if err != nil {
		return nil, errUnwrap
	}
	return key, nil
}

// unwrapKey unwraps a data key and checks its size.
func (w *wrapper) unwrapKey(keyID string, blob []byte) ([]byte, error) {
	key, err := w.unwrap(keyID, blob)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s (altered, or moved from another id)", err, keyID)
	}
	if len(key) != sealed.KeySize {
		return nil, fmt.Errorf("keystore: key %s has %d bytes, want %d", keyID, len(key), sealed.KeySize)
	}
	return key, nil
}

// checkValue is the wrapped check value a new key store records.
func (w *wrapper) checkValue() []byte { return w.wrap(checkID, checkPlain) }

// verifyCheck tells whether the server key made the recorded check value.
func (w *wrapper) verifyCheck(blob []byte) error {
	got, err := w.unwrap(checkID, blob)
	if err != nil || !bytes.Equal(got, checkPlain) {
		return sealed.ErrWrongServerKey
	}
	return nil
}

// newKey returns a fresh random data key.
func newKey() []byte {
	k := make([]byte, sealed.KeySize)
	_, _ = rand.Read(k)
	return k
}

// checkIDs refuses key ids sealed would not write.
func checkIDs(ids ...string) error {
	for _, id := range ids {
		if !sealed.ValidKeyID(id) {
			return fmt.Errorf("keystore: invalid key id %q", id)
		}
	}
	return nil
}
