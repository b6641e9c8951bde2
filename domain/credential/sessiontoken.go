package credential

import "crypto/sha256"

// Session tokens are 256 random bits, base64url without padding (43 characters; see
// randomToken in domain/command). Only their SHA-256 is stored and indexed. A fast hash suffices (no salt,
// no argon2): the token is uniformly random with 256 bits of entropy, so there is nothing
// to guess from its hash and no dictionary to precompute; slow hashing protects
// low-entropy secrets such as passwords.

// HashSessionToken returns the SHA-256 of a session token: the key of the session index
// and the TokenHash of SessionStarted (in hex).
func HashSessionToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }
