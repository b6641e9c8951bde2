package credential

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image/png"
	"strings"
	"testing"
	"time"
)

// TestTOTPCode: the SHA-1 test vectors of RFC 6238 appendix B, truncated to 6 digits.
func TestTOTPCode(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := TOTPCode(secret, TOTPStep(time.Unix(tc.unix, 0)))
		if err != nil || got != tc.want {
			t.Errorf("at %d: %q, %v; want %q", tc.unix, got, err, tc.want)
		}
	}
}

func TestMatchTOTPStep(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	cur := TOTPStep(now)
	code := func(s int64) string { c, _ := TOTPCode(secret, s); return c }
	if s, ok, err := MatchTOTPStep(secret, " "+code(cur - 1)[:3]+" "+code(cur - 1)[3:], now, 0); err != nil || !ok || s != cur-1 {
		t.Fatalf("previous step, spaced: %d, %v, %v", s, ok, err)
	}
	if _, ok, _ := MatchTOTPStep(secret, code(cur), now, cur); ok {
		t.Fatal("accepted a step not after the last accepted one")
	}
	if _, ok, _ := MatchTOTPStep(secret, code(cur+2), now, 0); ok {
		t.Fatal("accepted a code two steps ahead")
	}
	for _, bad := range []string{"", "12345", "1234567", "12a456"} {
		if _, ok, _ := MatchTOTPStep(secret, bad, now, 0); ok {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestTOTPKeyAndQR(t *testing.T) {
	k, err := TOTPKey(bytes.Repeat([]byte{1}, TOTPSecretSize), "Vigil", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u := k.URL(); !strings.HasPrefix(u, "otpauth://totp/Vigil:a@example.com?") || !strings.Contains(u, "period=30") {
		t.Fatalf("url %q", u)
	}
	raw, err := TOTPQRPNG(k)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() != QRCodeSize || img.Bounds().Dy() != QRCodeSize {
		t.Fatalf("qr: %v", err)
	}
}

// TestKeyringIndex: the index is stable for one key, differs by purpose and by key, and is
// neither the value nor its unkeyed SHA-256 (API.md "Personal data and erasure").
func TestKeyringIndex(t *testing.T) {
	k1, err := NewKeyring(KeyringConfig{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKeyring(KeyringConfig{Key: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	const email = "ann@example.com"
	a, b := k1.Index("email", email), k1.Index("email", email)
	sum := sha256.Sum256([]byte(email))
	switch {
	case a != b:
		t.Errorf("not stable: %s, %s", a, b)
	case len(a) != 64:
		t.Errorf("index %q: want 64 hex digits", a)
	case a == k1.Index("admin-bootstrap", email):
		t.Error("two purposes give one index")
	case a == k2.Index("email", email):
		t.Error("two keys give one index")
	case a == hex.EncodeToString(sum[:]) || strings.Contains(a, email):
		t.Error("the index is the value or its unkeyed hash")
	}
}
