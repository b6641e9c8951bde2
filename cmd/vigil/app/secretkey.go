package app

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretKeySize is the length of the server key in bytes (AES-256).
const SecretKeySize = 32

// ErrBadSecretKey: the key file does not hold a key of SecretKeySize bytes.
var ErrBadSecretKey = errors.New("the file does not hold a 32-byte key (raw, hex or base64)")

// ReadSecretKey reads the server key from path. The file holds the 32 bytes as they are, or
// as 64 hex digits, or in standard or URL-safe base64 (padded or not); surrounding whitespace
// is ignored in the text forms. A missing or unreadable file is an error wrapping the
// fs error; a file of another shape is ErrBadSecretKey.
func ReadSecretKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSecretKey(b)
}

func parseSecretKey(b []byte) ([]byte, error) {
	if len(b) == SecretKeySize {
		return b, nil
	}
	t := bytes.TrimSpace(b)
	if len(t) == 2*SecretKeySize {
		if k, err := hex.DecodeString(string(t)); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(t)); err == nil && len(k) == SecretKeySize {
			return k, nil
		}
	}
	return nil, ErrBadSecretKey
}

// EnsureSecretKey reads the server key at path, creating it first when the file does not
// exist: 32 random bytes, mode 0600, written to a temporary file, synced and then linked into
// place, so that the key appears whole or not at all and two processes starting together end
// up with the same key. created reports whether this call made the file.
func EnsureSecretKey(path string) (key []byte, created bool, err error) {
	key, err = ReadSecretKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = make([]byte, SecretKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate a secret key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".secret.key-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Close(); err != nil {
		return nil, false, err
	}
	// Link, unlike rename, never replaces a key another process has just written.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err = ReadSecretKey(path)
			return key, false, err
		}
		// A file system without hard links: rename, which is atomic but may replace.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, false, err
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, true, nil
}
