package argon2id

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/argon2"
)

// TestMatchesXCrypto: Key gives x/crypto's IDKey for a spread of costs, lanes and inputs,
// computed in one buffer reused from hash to hash and first filled with junk, so that
// neither its earlier contents nor a larger-than-needed buffer change a result.
func TestMatchesXCrypto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mem := make([]Block, Blocks(1024, 1))
	for i := range mem {
		for j := range mem[i] {
			mem[i][j] = rng.Uint64()
		}
	}
	cases := []struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
	}{
		{1, 8, 1, 32}, {1, 64, 1, 16}, {2, 64, 1, 32}, {3, 256, 1, 64}, {2, 1024, 1, 32},
		{1, 64, 2, 32}, {2, 256, 4, 32}, {3, 100, 3, 128}, {2, 19, 1, 33}, {4, 512, 2, 32},
	}
	for _, c := range cases {
		for range 3 {
			pw := make([]byte, rng.IntN(40))
			salt := make([]byte, 8+rng.IntN(24))
			for i := range pw {
				pw[i] = byte(rng.Uint32())
			}
			for i := range salt {
				salt[i] = byte(rng.Uint32())
			}
			want := argon2.IDKey(pw, salt, c.time, c.memory, c.threads, c.keyLen)
			got := Key(mem, pw, salt, c.time, c.memory, c.threads, c.keyLen)
			if !bytes.Equal(got, want) {
				t.Fatalf("t=%d m=%d p=%d len=%d: got %x, want %x", c.time, c.memory, c.threads, c.keyLen, got, want)
			}
		}
	}
}

// TestRFC9106Vector is the argon2id test vector of RFC 9106 section 5.3 computed without
// the secret and associated data it also has, as x/crypto's own tests do (x/crypto does not
// take them): the expected tag is x/crypto's output for these inputs.
func TestRFC9106Vector(t *testing.T) {
	pw, salt := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	mem := make([]Block, Blocks(32, 4))
	got := Key(mem, pw, salt, 3, 32, 4, 32)
	want := argon2.IDKey(pw, salt, 3, 32, 4, 32)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %s, want %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

func TestKeyPanicsOnShortMemory(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "argon2: memory too small" {
			t.Fatalf("recover() = %v", r)
		}
	}()
	Key(make([]Block, 7), []byte("pw"), []byte("saltsalt"), 1, 64, 1, 32)
}
