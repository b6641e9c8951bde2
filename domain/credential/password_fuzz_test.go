package credential

import (
	"errors"
	"testing"
)

// FuzzVerifyPHC: a stored hash is untrusted input to Verify (a corrupt or hostile row):
// anything that is not a PHC string within the parameter bounds is refused with
// ErrInvalidHash before any argon2 work, and no input panics.
func FuzzVerifyPHC(f *testing.F) {
	h, err := NewArgon2Hasher(Argon2Config{MemoryKiB: 64, Iterations: 1})
	if err != nil {
		f.Fatal(err)
	}
	good, err := h.Hash("correct horse")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, s := range []string{"", "$", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=64,t=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, sum, err := parsePHC(encoded)
		if err != nil {
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("parsePHC(%q): %v does not wrap ErrInvalidHash", encoded, err)
			}
			return
		}
		if p.m > maxArgon2MemoryKiB || p.t == 0 || p.t > maxArgon2Iterations || p.p == 0 || p.m < 8*uint32(p.p) ||
			len(salt) < 8 || len(salt) > 64 || len(sum) < 16 || len(sum) > 128 {
			t.Fatalf("parsePHC(%q): out of bounds %+v, %d-byte salt, %d-byte hash", encoded, p, len(salt), len(sum))
		}
		if p.m <= 1024 && p.t <= 2 { // verify only cheap ones: the bounds allow 2 GiB
			if _, _, err := h.Verify("correct horse", encoded); err != nil {
				t.Fatalf("Verify(%q) of a hash that parses: %v", encoded, err)
			}
		}
	})
}
