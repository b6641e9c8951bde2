package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// SealedSecret is a secret encrypted with AES-256-GCM under a server key. KeyID names the
// key (see SecretKeyID) so that keys can be rotated: old events stay readable as long as
// the keyring holds their key. Nonce and Ciphertext (which includes the GCM tag) are base64
// in JSON.
type SealedSecret struct {
	KeyID      string `json:"key_id"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// SecretKeyID returns the id of a server key: the first 8 hex characters of its SHA-256.
// It identifies the key without revealing it.
func SecretKeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// KeyringConfig configures NewKeyring.
type KeyringConfig struct {
	// Key is the current 32-byte server key: new secrets are sealed with it. Required.
	Key []byte
	// Previous keys (32 bytes each) still open secrets sealed before a rotation.
	Previous [][]byte
	// Rand supplies the GCM nonces; default crypto/rand.Reader. It must be safe for
	// concurrent use.
	Rand io.Reader
}

// Keyring seals and opens secrets (TOTP keys) with AES-256-GCM under the server key. It is
// safe for concurrent use.
type Keyring struct {
	current  string
	aeads    map[string]cipher.AEAD
	rand     io.Reader
	indexKey []byte // HMAC key of Index, derived from the current key
}

// NewKeyring validates the keys (32 bytes each, distinct) and returns a keyring sealing
// with cfg.Key.
func NewKeyring(cfg KeyringConfig) (*Keyring, error) {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	k := &Keyring{aeads: map[string]cipher.AEAD{}, rand: cfg.Rand}
	add := func(key []byte) (string, error) {
		if len(key) != 32 {
			return "", fmt.Errorf("keyring: a server key must be 32 bytes, got %d", len(key))
		}
		id := SecretKeyID(key)
		if _, dup := k.aeads[id]; dup {
			return "", fmt.Errorf("keyring: key %s given twice", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return "", fmt.Errorf("keyring: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return "", fmt.Errorf("keyring: %w", err)
		}
		k.aeads[id] = aead
		return id, nil
	}
	if cfg.Key == nil {
		return nil, errors.New("keyring: KeyringConfig.Key is required")
	}
	id, err := add(cfg.Key)
	if err != nil {
		return nil, err
	}
	k.current = id
	m := hmac.New(sha256.New, cfg.Key)
	m.Write([]byte("vigil keyring index v1"))
	k.indexKey = m.Sum(nil)
	for _, p := range cfg.Previous {
		if _, err := add(p); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Index returns a keyed hash (lowercase hex HMAC-SHA256 under a key derived from the current
// server key) of value for purpose: what the log may hold in place of a personal value it must
// look up by, such as the email of an uniqueness reservation (API.md "Personal data and
// erasure": never the value, nor an unkeyed hash of it). Purposes separate the uses, so two
// indexes of one value cannot be linked. The index follows the current key: rotating the
// server key re-keys every index (see README "Personal data and erasure").
func (k *Keyring) Index(purpose, value string) string {
	m := hmac.New(sha256.New, k.indexKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// KeyID returns the id of the key new secrets are sealed with.
func (k *Keyring) KeyID() string { return k.current }

// Seal encrypts plaintext with the current key and a fresh random nonce. aad (associated
// data, not secret) binds the ciphertext to its context: opening with another aad fails.
func (k *Keyring) Seal(plaintext, aad []byte) (SealedSecret, error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return SealedSecret{}, fmt.Errorf("keyring: nonce: %w", err)
	}
	return SealedSecret{KeyID: k.current, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plaintext, aad)}, nil
}

// Open decrypts s. An unknown key id gives an error wrapping ErrUnknownKey; a tampered
// ciphertext or a different aad gives an authentication error.
func (k *Keyring) Open(s SealedSecret, aad []byte) ([]byte, error) {
	aead := k.aeads[s.KeyID]
	if aead == nil {
		return nil, fmt.Errorf("keyring: key %q: %w", s.KeyID, ErrUnknownKey)
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, errors.New("keyring: bad nonce size")
	}
	pt, err := aead.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("keyring: open secret sealed with key %s: %w", s.KeyID, err)
	}
	return pt, nil
}
