package ssf

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vigil-auth/vigil/eventstore/internal/keyfile"

	"github.com/go-jose/go-jose/v4"
)

// KeyBits is the size of the RSA keys made for signing SETs.
const KeyBits = 2048

// RetiredKeyTTL is how long a replaced key's public half stays in the JWK set, so that SETs
// signed just before a rotation (in a receiver's queue, or in a poll not yet acknowledged)
// still verify.
const RetiredKeyTTL = 24 * time.Hour

// keyFile is the JSON layout of the signing key file (mode 0600): the active private key and
// the public keys it replaced with the time they were replaced.
type keyFile struct {
	Format  int          `json:"format"` // 1
	Active  activeKey    `json:"active"`
	Retired []retiredKey `json:"retired,omitempty"`
}

type activeKey struct {
	PrivateKey string    `json:"private_key"` // PEM, PKCS #8
	CreatedAt  time.Time `json:"created_at"`
}

type retiredKey struct {
	PublicKey string    `json:"public_key"` // PEM, PKIX
	RetiredAt time.Time `json:"retired_at"`
}

// Keys is the transmitter's signing key and the public keys it replaced less than
// RetiredKeyTTL ago. Safe for concurrent use (immutable).
type Keys struct {
	priv    *rsa.PrivateKey
	kid     string
	signer  jose.Signer
	retired []retiredPub
}

type retiredPub struct {
	pub       *rsa.PublicKey
	kid       string
	retiredAt time.Time
}

// KeyID is a public key's kid: its RFC 7638 JWK thumbprint (SHA-256, base64url), which any
// receiver can recompute from the JWK.
func KeyID(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// ActiveKeyID is the kid of the key that signs.
func (k *Keys) ActiveKeyID() string { return k.kid }

// JWKS returns the JWK set of the signing key and the keys retired after now-RetiredKeyTTL.
func (k *Keys) JWKS(now time.Time) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"}}}
	for _, r := range k.retired {
		if now.Sub(r.retiredAt) < RetiredKeyTTL {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: r.pub, KeyID: r.kid, Algorithm: string(jose.RS256), Use: "sig"})
		}
	}
	return set
}

// Sign signs claims as a SET: a compact JWS, RS256, header typ "secevent+jwt" and the key's kid.
func (k *Keys) Sign(claims []byte) (string, error) {
	obj, err := k.signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	return obj.CompactSerialize()
}

func newKeys(f keyFile) (*Keys, error) {
	if f.Format != 1 {
		return nil, fmt.Errorf("unknown key file format %d", f.Format)
	}
	blk, _ := pem.Decode([]byte(f.Active.PrivateKey))
	if blk == nil {
		return nil, errors.New("the active key is not PEM")
	}
	anyKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the active key: %w", err)
	}
	priv, ok := anyKey.(*rsa.PrivateKey)
	if !ok || priv.N.BitLen() < 2048 {
		return nil, errors.New("the active key is not an RSA key of at least 2048 bits")
	}
	k := &Keys{priv: priv}
	if k.kid, err = KeyID(&priv.PublicKey); err != nil {
		return nil, err
	}
	k.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("secevent+jwt"))
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	for _, r := range f.Retired {
		blk, _ := pem.Decode([]byte(r.PublicKey))
		if blk == nil {
			return nil, errors.New("a retired key is not PEM")
		}
		p, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a retired key: %w", err)
		}
		pub, ok := p.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("a retired key is not RSA")
		}
		kid, err := KeyID(pub)
		if err != nil {
			return nil, err
		}
		k.retired = append(k.retired, retiredPub{pub: pub, kid: kid, retiredAt: r.RetiredAt})
	}
	return k, nil
}

// LoadKeys reads the key file at path, which must exist.
func LoadKeys(path string) (*Keys, error) {
	_, k, err := readKeyFile(path)
	return k, err
}

func readKeyFile(path string) (keyFile, *Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return keyFile{}, nil, err
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return keyFile{}, nil, fmt.Errorf("%s is not an SSF signing key file: %w", path, err)
	}
	k, err := newKeys(f)
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, k, nil
}

// EnsureKeys reads the key file at path, making it (mode 0600) with a new key when it does
// not exist; created says it was made.
func EnsureKeys(path string, now time.Time) (k *Keys, created bool, err error) {
	return keyfile.Ensure(path, LoadKeys, func() (keyFile, error) { return freshKey(now) }, newKeys)
}

// GenerateKeys makes a new key held only in memory (tests and tools).
func GenerateKeys(now time.Time) (*Keys, error) {
	f, err := freshKey(now)
	if err != nil {
		return nil, err
	}
	return newKeys(f)
}

// RotateKey replaces the active key of the file at path with a new one; the old public key
// stays in the JWK set for RetiredKeyTTL, and keys retired longer ago are dropped. A running
// server signs with the new key after a restart.
func RotateKey(path string, now time.Time) (*Keys, error) {
	f, old, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	next, err := freshKey(now)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&old.priv.PublicKey)
	if err != nil {
		return nil, err
	}
	next.Retired = []retiredKey{{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})), RetiredAt: now.UTC()}}
	for _, r := range f.Retired {
		if now.Sub(r.RetiredAt) < RetiredKeyTTL {
			next.Retired = append(next.Retired, r)
		}
	}
	if err := keyfile.Write(path, next, false); err != nil {
		return nil, err
	}
	return newKeys(next)
}

func freshKey(now time.Time) (keyFile, error) {
	priv, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return keyFile{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyFile{}, err
	}
	return keyFile{Format: 1, Active: activeKey{PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), CreatedAt: now.UTC()}}, nil
}
