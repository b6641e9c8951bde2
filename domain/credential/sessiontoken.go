package credential

import "crypto/sha256"

// Session tokens are 256 random bits, base64url without padding (43 characters; see
// randomToken in domain/command). Only their SHA-256 is stored and indexed. A fast hash suffices (no salt,
// no argon2): the token is uniformly random with 256 bits of entropy, so there is nothing
// to guess from its hash and no dictionary to precompute; slow hashing protects
// low-entropy secrets such as passwords.

// HashSessionToken returns the SHA-256 of a session token: the key of the session index
// and the TokenHash of SessionStarted (in hex).
func HashSessionToken(token string) [32]byte {
	// Copied into a stack buffer: converting a 43-character string to []byte allocates
	// (the compiler's own stack buffer holds 32 bytes), and whoami hashes on every request.
	var buf [128]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}
