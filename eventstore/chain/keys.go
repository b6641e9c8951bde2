package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/eventstore/internal/keyfile"
)

// Algorithm names the signature scheme of checkpoints, as GET /api/v1/log/keys shows it.
const Algorithm = "Ed25519"

// KeyID derives a key's id from its public key: the first 16 hex digits of SHA-256 over the
// 32 raw bytes. Anyone holding the public key can recompute it, so the id needs no registry.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// KeyInfo describes one signing key for GET /api/v1/log/keys.
type KeyInfo struct {
	KeyID     string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	PublicKey string    `json:"public_key"` // the 32 raw bytes, standard padded base64
	CreatedAt time.Time `json:"created_at"`
}

// keyFile is the JSON layout of the signing key file: the active private key (its 32-byte
// seed) and the public keys it replaced, which stay listed so that old checkpoints still
// verify.
type keyFile struct {
	Format   int          `json:"format"` // 1
	Active   activeKey    `json:"active"`
	Previous []publicKeyJ `json:"previous,omitempty"`
}

type activeKey struct {
	Seed      string    `json:"ed25519_seed"` // standard base64 of the 32-byte seed
	CreatedAt time.Time `json:"created_at"`
}

type publicKeyJ struct {
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
}

// KeyRing is the server's signing key with the public keys of the keys it replaced.
type KeyRing struct {
	priv     ed25519.PrivateKey
	activeID string
	keys     []KeyInfo // oldest first, the active key last
	public   KeySet
}

// ActiveKeyID is the id of the key that signs new checkpoints.
func (k *KeyRing) ActiveKeyID() string { return k.activeID }

// Keys lists every key, oldest first (the active key last), for GET /api/v1/log/keys.
func (k *KeyRing) Keys() []KeyInfo { return slices.Clone(k.keys) }

// Public returns the public keys, for verifying.
func (k *KeyRing) Public() KeySet { return k.public }

// Sign makes the checkpoint of the event at position whose chain hash is hash, at time t.
func (k *KeyRing) Sign(position uint64, hash Sum, t time.Time) Checkpoint {
	cp := Checkpoint{Position: position, Hash: hash.String(), Time: FormatTime(t), KeyID: k.activeID}
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, cp.Message()))
	return cp
}

func newKeyRing(f keyFile) (*KeyRing, error) {
	if f.Format != 1 {
		return nil, fmt.Errorf("unknown key file format %d (want 1)", f.Format)
	}
	seed, err := base64.StdEncoding.DecodeString(f.Active.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("the active key is not a base64 Ed25519 seed of 32 bytes")
	}
	k := &KeyRing{priv: ed25519.NewKeyFromSeed(seed), public: KeySet{}}
	pub := k.priv.Public().(ed25519.PublicKey)
	k.activeID = KeyID(pub)
	for i, p := range f.Previous {
		pk, err := ParsePublicKey(p.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("previous key %d: %w", i+1, err)
		}
		k.add(pk, p.CreatedAt)
	}
	k.add(pub, f.Active.CreatedAt)
	return k, nil
}

func (k *KeyRing) add(pub ed25519.PublicKey, created time.Time) {
	id := KeyID(pub)
	k.public[id] = pub
	k.keys = append(k.keys, KeyInfo{KeyID: id, Algorithm: Algorithm, PublicKey: base64.StdEncoding.EncodeToString(pub), CreatedAt: created.UTC()})
}

// LoadKeyRing reads a signing key file.
func LoadKeyRing(path string) (*KeyRing, error) {
	_, k, err := readKeyFile(path)
	return k, err
}

// readKeyFile reads and checks the key file at path.
func readKeyFile(path string) (keyFile, *KeyRing, error) {
	var f keyFile
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, nil, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, nil, fmt.Errorf("%s is not a Vigil log signing key file: %v", path, err)
	}
	k, err := newKeyRing(f)
	if err != nil {
		return f, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, k, nil
}

// EnsureKeyRing reads the key file at path, creating it with a fresh key (mode 0600) when it
// does not exist; created says whether it did.
func EnsureKeyRing(path string, now time.Time) (k *KeyRing, created bool, err error) {
	return keyfile.Ensure(path, LoadKeyRing, func() (keyFile, error) { return freshKey(now) }, newKeyRing)
}

// RotateKey replaces the active key of the file at path by a fresh one and keeps the old
// public key listed. It returns the new ring. A running server signs with the new key after
// a restart.
func RotateKey(path string, now time.Time) (*KeyRing, error) {
	f, old, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	next, err := freshKey(now)
	if err != nil {
		return nil, err
	}
	next.Previous = append(f.Previous, publicKeyJ{
		PublicKey: base64.StdEncoding.EncodeToString(old.priv.Public().(ed25519.PublicKey)),
		CreatedAt: f.Active.CreatedAt,
	})
	if err := keyfile.Write(path, next, false); err != nil {
		return nil, err
	}
	return newKeyRing(next)
}

func freshKey(now time.Time) (keyFile, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return keyFile{}, err
	}
	return keyFile{Format: 1, Active: activeKey{Seed: base64.StdEncoding.EncodeToString(seed), CreatedAt: now.UTC()}}, nil
}

// KeySet maps key ids to public keys: what a verifier trusts.
type KeySet map[string]ed25519.PublicKey

// ParsePublicKey reads a public key in standard padded base64 (as GET /api/v1/log/keys shows
// it); unpadded and URL-safe forms are accepted too.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("%q is not a base64 Ed25519 public key of 32 bytes", s)
}

// ParseKeySet reads public keys from text: one base64 key per line, the JSON answer of GET
// /api/v1/log/keys, or a key file (its public parts).
func ParseKeySet(text string) (KeySet, error) {
	ks := KeySet{}
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "{") {
		var api struct {
			Keys []KeyInfo `json:"keys"`
		}
		if err := json.Unmarshal([]byte(trimmed), &api); err == nil && len(api.Keys) > 0 {
			for _, k := range api.Keys {
				pk, err := ParsePublicKey(k.PublicKey)
				if err != nil {
					return nil, err
				}
				ks[KeyID(pk)] = pk
			}
			return ks, nil
		}
		var f keyFile
		if err := json.Unmarshal([]byte(trimmed), &f); err != nil {
			return nil, errors.New("neither a list of keys nor a key file")
		}
		k, err := newKeyRing(f)
		if err != nil {
			return nil, err
		}
		return k.Public(), nil
	}
	for line := range strings.Lines(trimmed) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		pk, err := ParsePublicKey(line)
		if err != nil {
			return nil, err
		}
		ks[KeyID(pk)] = pk
	}
	if len(ks) == 0 {
		return nil, errors.New("no public key given")
	}
	return ks, nil
}
