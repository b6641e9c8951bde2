package credential

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Backup codes: BackupCodeCount codes of BackupCodeLength characters from an alphabet
// without look-alike characters (no 0/O, 1/I/L), shown grouped by 4 ("K7QM-2XHD-9PTR").
//
// They are stored as SHA-256 hashes, not with a slow password hash: each code carries
// 12 x log2(31) ≈ 59 bits of uniform randomness (not a human choice), so there is no
// dictionary to try, and an offline search of 2^59 per code is out of reach even at
// GPU speed, while online guessing is bounded by login tickets (5 tries) and throttling.
// The set id is mixed into each hash as a salt, so equal codes of two sets (or accounts)
// never share a hash and no table can be precomputed.
const (
	BackupCodeCount  = 10
	BackupCodeLength = 12
	// BackupCodeAlphabet holds the characters a code is drawn from.
	BackupCodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
)

// GenerateBackupCodes draws n codes uniformly from BackupCodeAlphabet (rejection sampling,
// no modulo bias), formatted in groups of 4.
func GenerateBackupCodes(r io.Reader, n int) ([]string, error) {
	const alpha = len(BackupCodeAlphabet)
	limit := 256 - 256%alpha // accept bytes below the largest multiple of alpha
	codes := make([]string, 0, n)
	buf := make([]byte, 32)
	for len(codes) < n {
		var b strings.Builder
		for b.Len() < BackupCodeLength+BackupCodeLength/4-1 {
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("backup codes: %w", err)
			}
			for _, x := range buf {
				if int(x) >= limit {
					continue
				}
				if l := b.Len(); l > 0 && l%5 == 4 {
					b.WriteByte('-')
				}
				b.WriteByte(BackupCodeAlphabet[int(x)%alpha])
				if b.Len() == BackupCodeLength+BackupCodeLength/4-1 {
					break
				}
			}
		}
		codes = append(codes, b.String())
	}
	return codes, nil
}

// NormalizeBackupCode upper-cases a typed code and drops spaces and hyphens.
func NormalizeBackupCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// HashBackupCode is the stored form of a normalised code: hex SHA-256 of setID ":" code.
func HashBackupCode(setID, normalized string) string {
	sum := sha256.Sum256([]byte(setID + ":" + normalized))
	return hex.EncodeToString(sum[:])
}

// MatchBackupCode returns the index of an unused code equal to code among the hashes of
// set setID (used[i] tells whether hashes[i] was used), comparing against every hash in
// constant time.
func MatchBackupCode(setID string, hashes []string, used []bool, code string) (int, bool) {
	n := NormalizeBackupCode(code)
	if len(n) != BackupCodeLength {
		return 0, false
	}
	h := []byte(HashBackupCode(setID, n))
	idx, found := 0, false
	for i, stored := range hashes {
		if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 && !used[i] {
			idx, found = i, true
		}
	}
	return idx, found
}
