package forward

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Standard Webhooks (https://www.standardwebhooks.com) signing.

// SecretPrefix starts a Standard Webhooks signing secret: "whsec_" + base64(key).
const SecretPrefix = "whsec_"

// Standard Webhooks headers set on every delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// ErrBadSecret: a webhook secret is not "whsec_" followed by the standard base64 of 24 to
// 64 bytes.
var ErrBadSecret = errors.New("forward: the webhook secret is not whsec_ followed by base64 of 24 to 64 bytes")

// ParseSecret decodes a "whsec_..." secret (surrounding white space ignored) into the HMAC
// key. It fails with ErrBadSecret.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// NewSecret returns a new random "whsec_" secret of 32 bytes.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign returns the webhook-signature header value of one delivery: "v1," +
// base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)), timestamp in unix seconds.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ReadSecretFile reads a webhook secret file (one "whsec_..." line).
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseSecret(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// EnsureSecretFile reads the secret at path, or, when no file is there, writes a new one
// (mode 0600) and reports created. The secret itself is never logged by Vigil: only its path.
func EnsureSecretFile(path string) (key []byte, created bool, err error) {
	key, err = ReadSecretFile(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	secret := NewSecret()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	key, err = ParseSecret(secret)
	return key, true, err
}
