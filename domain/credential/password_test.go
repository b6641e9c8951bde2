package credential

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func testHasher(t *testing.T, m, it uint32) *Argon2Hasher {
	t.Helper()
	h, err := NewArgon2Hasher(Argon2Config{MemoryKiB: m, Iterations: it})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestArgon2HashAndVerify(t *testing.T) {
	h := testHasher(t, 8192, 1)
	enc, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("PHC string %q", enc)
	}
	parts := strings.Split(enc, "$")
	if salt, _ := b64.DecodeString(parts[4]); len(salt) != 16 {
		t.Fatalf("salt of %d bytes", len(salt))
	}
	if sum, _ := b64.DecodeString(parts[5]); len(sum) != 32 {
		t.Fatalf("hash of %d bytes", len(sum))
	}
	if again, _ := h.Hash("correct horse"); again == enc {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for _, tc := range []struct {
		pw     string
		ok     bool
		rehash bool
		h      *Argon2Hasher
	}{
		{"correct horse", true, false, h},
		{"correct horsE", false, false, h},
		{"", false, false, h},
		// a later cost change still verifies the old hash, and asks for a rehash
		{"correct horse", true, true, testHasher(t, 8192, 2)},
		{"correct horse", true, true, testHasher(t, 9216, 1)},
	} {
		ok, rehash, err := tc.h.Verify(tc.pw, enc)
		if err != nil || ok != tc.ok || rehash != tc.rehash {
			t.Errorf("Verify(%q) with %+v = %v, %v, %v", tc.pw, tc.h.Config(), ok, rehash, err)
		}
		if tc.ok && tc.h.NeedsRehash(enc) != tc.rehash {
			t.Errorf("NeedsRehash with %+v", tc.h.Config())
		}
	}
}

func TestArgon2RejectsMalformedHashes(t *testing.T) {
	h := testHasher(t, 8192, 1)
	good, _ := h.Hash("pw")
	p := strings.Split(good, "$")
	for _, bad := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=8192,t=1,p=1$" + p[4] + "$" + p[5],
		"$argon2id$v=16$m=8192,t=1,p=1$" + p[4] + "$" + p[5],
		"$argon2id$v=19$m=8192,t=1$" + p[4] + "$" + p[5],
		"$argon2id$v=19$m=8192,t=1,p=1,x=2$" + p[4] + "$" + p[5],
		"$argon2id$v=19$m=99999999,t=1,p=1$" + p[4] + "$" + p[5],
		"$argon2id$v=19$m=8192,t=0,p=1$" + p[4] + "$" + p[5],
		"$argon2id$v=19$m=8192,t=1,p=1$!!$" + p[5],
		"$argon2id$v=19$m=8192,t=1,p=1$" + p[4] + "$" + p[5][:4],
	} {
		if _, _, err := h.Verify("pw", bad); !errors.Is(err, ErrInvalidHash) {
			t.Errorf("Verify(%q) = %v, want ErrInvalidHash", bad, err)
		}
	}
	h.VerifyDummy("anything") // must not panic
}

func TestArgon2ConfigValidation(t *testing.T) {
	h, err := NewArgon2Hasher(Argon2Config{MemoryKiB: 8192, Iterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.Parallelism != 1 || c.SaltLength != 16 || c.KeyLength != 32 {
		t.Fatalf("defaults %+v", c)
	}
	d := Argon2Config{}
	if err := d.fill(); err != nil || d.MemoryKiB != 19456 || d.Iterations != 2 {
		t.Fatalf("OWASP defaults %+v, %v", d, err)
	}
	for _, c := range []Argon2Config{{MemoryKiB: 4}, {SaltLength: 4}, {KeyLength: 8}, {Iterations: 1000}} {
		if _, err := NewArgon2Hasher(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	p, err := NewPasswordPolicy(PasswordPolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const email = "ann.lee@example.com"
	for _, tc := range []struct {
		name, pw string
		ok       bool
		reason   string // a substring of one reason
	}{
		{"strong passphrase", "umbrella-cactus-violin-47", true, ""},
		{"random", "kq7#Lm2!vR9zXw", true, ""},
		{"too short", "kq7#Lm2!vR", false, "at least 12"},
		{"exactly 12", "kq7#Lm2!vR9z", true, ""},
		{"too long", strings.Repeat("kq7#Lm2!vR9zXw", 19), false, "at most 256"},
		{"256 is fine", strings.Repeat("kq7#Lm2!", 32), true, ""},
		{"contains local part", "xx-ANN.LEE-umbrella-cactus", false, "email"},
		{"common password", "password1234", false, "commonly used password"},
		{"keyboard walk", "qwertyuiopasdf", false, "too easy to guess"},
		{"repeat", "aaaaaaaaaaaaaaaa", false, "Repeats"},
		{"name", "annleeannlee2020", false, "too easy to guess"},
		{"invalid utf8", "abc\xffdefghijklmn", false, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.pw, email, "Ann", "Lee")
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrPasswordRefused) {
				t.Fatalf("error %v, want *PolicyError", err)
			}
			if !strings.Contains(strings.Join(pe.Reasons, " "), tc.reason) {
				t.Fatalf("reasons %q lack %q", pe.Reasons, tc.reason)
			}
		})
	}
	// a short local part (< 3 characters) is not checked
	if err := p.Check("xx-umbrella-cactus-violin", "xx@example.com"); err != nil {
		t.Fatalf("short local part: %v", err)
	}
}

func TestKeyring(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	old := []byte(strings.Repeat("o", 32))
	if _, err := NewKeyring(KeyringConfig{Key: key[:16]}); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := NewKeyring(KeyringConfig{Key: key, Previous: [][]byte{key}}); err == nil {
		t.Fatal("duplicate key accepted")
	}
	prev, _ := NewKeyring(KeyringConfig{Key: old})
	kr, err := NewKeyring(KeyringConfig{Key: key, Previous: [][]byte{old}})
	if err != nil {
		t.Fatal(err)
	}
	if kr.KeyID() != SecretKeyID(key) || len(kr.KeyID()) != 8 {
		t.Fatalf("key id %q", kr.KeyID())
	}
	s, err := kr.Seal([]byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != kr.KeyID() || strings.Contains(string(s.Ciphertext), "secret") {
		t.Fatalf("sealed %+v", s)
	}
	if pt, err := kr.Open(s, []byte("aad")); err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q, %v", pt, err)
	}
	if _, err := kr.Open(s, []byte("other")); err == nil {
		t.Fatal("opened with another aad")
	}
	tampered := s
	tampered.Ciphertext = append([]byte{s.Ciphertext[0] ^ 1}, s.Ciphertext[1:]...)
	if _, err := kr.Open(tampered, []byte("aad")); err == nil {
		t.Fatal("opened a tampered ciphertext")
	}
	// rotation: a secret sealed under the previous key still opens
	os, _ := prev.Seal([]byte("old"), nil)
	if pt, err := kr.Open(os, nil); err != nil || string(pt) != "old" {
		t.Fatalf("previous key: %q, %v", pt, err)
	}
	if _, err := prev.Open(s, []byte("aad")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestPasswordPolicyDescribesItself: the rules and the hint that the API reference and the
// portal show are those of the policy in effect.
func TestPasswordPolicyDescribesItself(t *testing.T) {
	def, err := NewPasswordPolicy(PasswordPolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c := def.Config(); c.MinLength != DefaultPasswordMinLength || c.MaxLength != DefaultPasswordMaxLength || c.MinScore != DefaultPasswordMinScore {
		t.Errorf("defaults %+v", c)
	}
	p, err := NewPasswordPolicy(PasswordPolicyConfig{MinLength: 15, MaxLength: 99, MinScore: 4})
	if err != nil {
		t.Fatal(err)
	}
	if h := p.Hint(); !strings.HasPrefix(h, "At least 15 characters") {
		t.Errorf("hint %q", h)
	}
	rules := strings.Join(p.Rules(), " ")
	for _, want := range []string{"15 to 99 characters", "at least 4 of 4", "local part"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q: %s", want, rules)
		}
	}
	// The hint's length is the one Check enforces.
	if err := p.Check("kq7#Lm2!vRx9", "a@example.com"); err == nil || !strings.Contains(err.Error(), "at least 15") {
		t.Errorf("Check of a 12-character password under MinLength 15: %v", err)
	}
}

// TestVerifyNotifyAnnouncesTheEnd: VerifyNotify calls started once, when the hash has its
// slot and before it computes, with an end as far ahead as the recent hashes took (the
// constructor's dummy hash gives the first figure); VerifyDummyNotify likewise; a malformed
// hash never starts one.
func TestVerifyNotifyAnnouncesTheEnd(t *testing.T) {
	var took []time.Duration
	h, err := NewArgon2Hasher(Argon2Config{MemoryKiB: 8192, Iterations: 1,
		Observe: func(_, compute time.Duration) { took = append(took, compute) }})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, verify := range []func(func(time.Time)){
		func(s func(time.Time)) {
			if ok, _, err := h.VerifyNotify("correct horse", enc, s); !ok || err != nil {
				t.Fatalf("VerifyNotify: %v, %v", ok, err)
			}
		},
		func(s func(time.Time)) { h.VerifyDummyNotify("anything", s) },
	} {
		var calls int
		var ahead time.Duration
		before := len(took)
		verify(func(end time.Time) { calls++; ahead = time.Until(end) })
		if calls != 1 || len(took) != before+1 {
			t.Fatalf("started called %d times for one hash", calls)
		}
		// The announced end is the average of the hashes so far (all of one cost here): at
		// least the shortest of them minus the time the call itself took to get here.
		shortest := slices.Min(took[:before])
		if ahead <= 0 || ahead > 2*slices.Max(took[:before]) || ahead < shortest/4 {
			t.Errorf("the hash announced its end %v ahead; earlier hashes took %v", ahead, took[:before])
		}
	}
	called := false
	if _, _, err := h.VerifyNotify("x", "$argon2id$v=19$bad", func(time.Time) { called = true }); err == nil || called {
		t.Errorf("a malformed hash: err %v, started called %v", err, called)
	}
}
