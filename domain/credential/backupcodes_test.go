package credential

import (
	"crypto/rand"
	"strings"
	"testing"
)

func TestBackupCodeFormat(t *testing.T) {
	codes, err := GenerateBackupCodes(rand.Reader, 200)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 14 || c[4] != '-' || c[9] != '-' {
			t.Fatalf("code %q is not grouped 4-4-4", c)
		}
		n := NormalizeBackupCode(c)
		if len(n) != BackupCodeLength || strings.Trim(n, BackupCodeAlphabet) != "" {
			t.Fatalf("code %q has characters outside the alphabet", c)
		}
		if strings.ContainsAny(n, "01OIL") {
			t.Fatalf("look-alike in %q", c)
		}
		seen[c] = true
	}
	if len(seen) != len(codes) {
		t.Fatal("duplicate codes")
	}
	if NormalizeBackupCode(" abcd-efgh jkmn ") != "ABCDEFGHJKMN" {
		t.Fatal("normalisation")
	}
}

// TestMatchBackupCode: a typed code matches its hash in any case and grouping, only while
// unused, and only in its own set (the set id salts the hash).
func TestMatchBackupCode(t *testing.T) {
	codes, err := GenerateBackupCodes(rand.Reader, 3)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = HashBackupCode("set-1", NormalizeBackupCode(c))
	}
	used := make([]bool, len(codes))
	typed := strings.ToLower(strings.ReplaceAll(codes[1], "-", " "))
	if i, ok := MatchBackupCode("set-1", hashes, used, typed); !ok || i != 1 {
		t.Fatalf("match of %q: %d, %v", typed, i, ok)
	}
	if _, ok := MatchBackupCode("set-2", hashes, used, codes[1]); ok {
		t.Fatal("matched in another set")
	}
	used[1] = true
	if _, ok := MatchBackupCode("set-1", hashes, used, codes[1]); ok {
		t.Fatal("matched a used code")
	}
	for _, bad := range []string{"", "ABCD", codes[0] + "X"} {
		if _, ok := MatchBackupCode("set-1", hashes, used, bad); ok {
			t.Fatalf("matched %q", bad)
		}
	}
}
