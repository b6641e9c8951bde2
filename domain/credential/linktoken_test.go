package credential

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLinkTokenRoundTripAndTampering(t *testing.T) {
	k, err := NewKeyring(KeyringConfig{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	c := LinkClaims{Purpose: LinkResetPassword, AccountID: "acc-1", Ref: "req-1", IssuedAt: at}
	tok := k.LinkToken(c)
	got, err := k.OpenLinkToken(LinkResetPassword, tok)
	if err != nil || got != c {
		t.Fatalf("open = %+v, %v; want %+v", got, err, c)
	}
	if _, err := k.OpenLinkToken(LinkNotMe, tok); !errors.Is(err, ErrInvalidLinkToken) {
		t.Errorf("a reset token opened as not-me: %v", err)
	}
	other, _ := NewKeyring(KeyringConfig{Key: bytes.Repeat([]byte{8}, 32)})
	if _, err := other.OpenLinkToken(LinkResetPassword, tok); !errors.Is(err, ErrInvalidLinkToken) {
		t.Errorf("another server key opened the token: %v", err)
	}
	forged := k.LinkToken(LinkClaims{Purpose: LinkResetPassword, AccountID: "acc-2", Ref: "req-1", IssuedAt: at})
	p1, _, _ := strings.Cut(forged, ".")
	_, m0, _ := strings.Cut(tok, ".")
	for _, bad := range []string{"", ".", tok + "x", p1 + "." + m0, strings.Repeat("a", 600), "a.b.c"} {
		if _, err := k.OpenLinkToken(LinkResetPassword, bad); !errors.Is(err, ErrInvalidLinkToken) {
			t.Errorf("OpenLinkToken(%q) = %v, want ErrInvalidLinkToken", bad, err)
		}
	}
	if HashLinkToken(tok) == HashLinkToken(forged) || len(HashLinkToken(tok)) != 64 {
		t.Error("HashLinkToken does not tell tokens apart")
	}
}
