package credential

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// xcryptoPHC is the PHC string x/crypto's argon2id gives password with salt and cost m, t.
func xcryptoPHC(password string, salt []byte, m, t uint32) string {
	sum := argon2.IDKey([]byte(password), salt, t, m, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", m, t, b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// TestArgon2SlotsVerifyXCryptoHashes: hashes made by x/crypto's argon2id verify through the
// hasher's reused slot memory, at the configured cost, at a lower one (in the slot) and a
// higher one (memory of its own), from many goroutines at once (MaxConcurrent slots shared),
// and a wrong password fails each.
func TestArgon2SlotsVerifyXCryptoHashes(t *testing.T) {
	h, err := NewArgon2Hasher(Argon2Config{MemoryKiB: 256, Iterations: 2, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	costs := [][2]uint32{{256, 2}, {64, 1}, {128, 3}, {1024, 1}}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := costs[i%len(costs)]
			pw := fmt.Sprintf("password %d", i)
			enc := xcryptoPHC(pw, salt, c[0], c[1])
			ok, rehash, err := h.Verify(pw, enc)
			if err != nil || !ok {
				t.Errorf("m=%d t=%d: Verify = %v, %v", c[0], c[1], ok, err)
			}
			if wantRehash := c != [2]uint32{256, 2}; rehash != wantRehash {
				t.Errorf("m=%d t=%d: needsRehash = %v", c[0], c[1], rehash)
			}
			if ok, _, _ := h.Verify(pw+"!", enc); ok {
				t.Errorf("m=%d t=%d: a wrong password verified", c[0], c[1])
			}
		}()
	}
	wg.Wait()
	// The hasher's own hashes are x/crypto's too.
	enc, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	p, s, want, err := parsePHC(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got := argon2.IDKey([]byte("correct horse"), s, p.t, p.m, p.p, p.keyLen); string(got) != string(want) {
		t.Fatalf("Hash gave %q, x/crypto derives a different key", enc)
	}
}
