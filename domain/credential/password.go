package credential

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vigil-auth/vigil/domain/credential/internal/argon2id"
)

// Argon2Config configures NewArgon2Hasher. Zero values take the defaults shown, which are
// OWASP's argon2id recommendation (m=19 MiB, t=2, p=1).
type Argon2Config struct {
	// MemoryKiB is the memory cost in KiB; default 19456. At least 8 x Parallelism.
	MemoryKiB uint32
	// Iterations is the time cost; default 2.
	Iterations uint32
	// Parallelism is the number of lanes; default 1.
	Parallelism uint8
	// SaltLength in bytes; default 16, at least 8.
	SaltLength uint32
	// KeyLength in bytes; default 32, at least 16.
	KeyLength uint32
	// MaxConcurrent bounds how many hashes run at once (each holds MemoryKiB); default
	// runtime.GOMAXPROCS(0). Callers beyond it wait their turn. Each of these hash slots
	// keeps its MemoryKiB once it has verified or hashed a password and reuses it for every
	// later hash, so a busy server neither allocates nor collects the memory per sign-in:
	// the hasher holds up to MaxConcurrent x MemoryKiB for its life (not for the dummy hash
	// of its construction).
	MaxConcurrent int
	// Rand supplies salts; default crypto/rand.Reader. It must be safe for concurrent use.
	Rand io.Reader
	// Observe, when set, is called after every argon2 computation with the time spent
	// waiting for a MaxConcurrent slot and the time spent computing (for metrics and
	// benchmarks). It must be fast and safe for concurrent use.
	Observe func(wait, compute time.Duration)
}

func (c *Argon2Config) fill() error {
	if c.MemoryKiB == 0 {
		c.MemoryKiB = 19456
	}
	if c.Iterations == 0 {
		c.Iterations = 2
	}
	if c.Parallelism == 0 {
		c.Parallelism = 1
	}
	if c.SaltLength == 0 {
		c.SaltLength = 16
	}
	if c.KeyLength == 0 {
		c.KeyLength = 32
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	switch {
	case c.MemoryKiB < 8*uint32(c.Parallelism):
		return fmt.Errorf("argon2: MemoryKiB %d is below 8 x parallelism", c.MemoryKiB)
	case c.MemoryKiB > maxArgon2MemoryKiB:
		return fmt.Errorf("argon2: MemoryKiB %d is above %d", c.MemoryKiB, maxArgon2MemoryKiB)
	case c.Iterations > maxArgon2Iterations:
		return fmt.Errorf("argon2: Iterations %d is above %d", c.Iterations, maxArgon2Iterations)
	case c.SaltLength < 8 || c.SaltLength > 64:
		return fmt.Errorf("argon2: SaltLength %d is outside 8..64", c.SaltLength)
	case c.KeyLength < 16 || c.KeyLength > 128:
		return fmt.Errorf("argon2: KeyLength %d is outside 16..128", c.KeyLength)
	}
	return nil
}

// Bounds on parameters read from a stored hash, so that a corrupt or hostile hash cannot
// make a verification allocate gigabytes or run for minutes.
const (
	maxArgon2MemoryKiB  = 1 << 21 // 2 GiB
	maxArgon2Iterations = 64
)

// Argon2Hasher hashes passwords with argon2id into PHC strings
// ($argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, unpadded standard base64) and verifies
// them. It is safe for concurrent use.
type Argon2Hasher struct {
	cfg Argon2Config
	// slots holds MaxConcurrent hash slots: a hash takes one and gives it back. Each is the
	// block memory of the configured cost (nil until first used).
	slots chan *[]argon2id.Block
	dummy string
	// compute is a moving average of the configured cost's compute time, in nanoseconds:
	// the end a hash announces when it starts (VerifyNotify).
	compute atomic.Int64
}

// NewArgon2Hasher validates cfg and returns a hasher. It computes one dummy hash (of a
// random password) up front: VerifyDummy spends the same time as a real verification, so
// that an unknown email costs what a known one does.
func NewArgon2Hasher(cfg Argon2Config) (*Argon2Hasher, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	h := &Argon2Hasher{cfg: cfg, slots: make(chan *[]argon2id.Block, cfg.MaxConcurrent)}
	for range cfg.MaxConcurrent {
		h.slots <- new([]argon2id.Block)
	}
	pw := make([]byte, 24)
	if _, err := io.ReadFull(cfg.Rand, pw); err != nil {
		return nil, fmt.Errorf("argon2: dummy password: %w", err)
	}
	d, err := h.Hash(base64.RawURLEncoding.EncodeToString(pw))
	if err != nil {
		return nil, err
	}
	h.dummy = d
	// The dummy hash's memory is not kept: a hasher that never verifies (a tool, a test)
	// holds none.
	for range cfg.MaxConcurrent {
		slot := <-h.slots
		*slot = nil
		h.slots <- slot
	}
	return h, nil
}

// Config returns the hasher's parameters (defaults filled in).
func (h *Argon2Hasher) Config() Argon2Config { return h.cfg }

// key computes argon2id in a hash slot (waiting for one): in the slot's memory when the
// cost fits it (the configured cost or a lower one, from an older hash), else in memory of
// its own that is not kept (a hash of a higher cost than the configured one).
// started, when not nil, is called once the hash holds its slot, with the time the hash is
// expected to end.
func (h *Argon2Hasher) key(password, salt []byte, p phcParams, started func(end time.Time)) []byte {
	queued := time.Now()
	slot := <-h.slots
	defer func() { h.slots <- slot }()
	start := time.Now()
	if started != nil {
		started(start.Add(time.Duration(h.compute.Load())))
	}
	var sum []byte
	if size, need := argon2id.Blocks(h.cfg.MemoryKiB, h.cfg.Parallelism), argon2id.Blocks(p.m, p.p); need <= size {
		if *slot == nil {
			*slot = make([]argon2id.Block, size)
		}
		sum = argon2id.Key(*slot, password, salt, p.t, p.m, p.p, p.keyLen)
	} else {
		sum = argon2id.Key(make([]argon2id.Block, need), password, salt, p.t, p.m, p.p, p.keyLen)
	}
	took := time.Since(start)
	if p.m == h.cfg.MemoryKiB && p.t == h.cfg.Iterations && p.p == h.cfg.Parallelism {
		// An average over about the last eight hashes of the configured cost (the first sets
		// it). Two hashes ending together may lose one's update: it is an estimate.
		if old := h.compute.Load(); old == 0 {
			h.compute.Store(int64(took))
		} else {
			h.compute.Store(old + (int64(took)-old)/8)
		}
	}
	if h.cfg.Observe != nil {
		h.cfg.Observe(start.Sub(queued), took)
	}
	return sum
}

// Hash returns the PHC string of password with a fresh random salt and the configured
// cost. It fails only when the random source fails.
func (h *Argon2Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.cfg.SaltLength)
	if _, err := io.ReadFull(h.cfg.Rand, salt); err != nil {
		return "", fmt.Errorf("argon2: salt: %w", err)
	}
	p := phcParams{m: h.cfg.MemoryKiB, t: h.cfg.Iterations, p: h.cfg.Parallelism, keyLen: h.cfg.KeyLength}
	sum := h.key([]byte(password), salt, p, nil)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2id.Version, p.m, p.t, p.p,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// Verify checks password against a PHC string, using the parameters written in the string
// (so hashes made with an older cost still verify) and a constant-time comparison.
// needsRehash is true when ok and the string's parameters differ from the hasher's: the
// caller should store a fresh Hash. A malformed string gives an error wrapping
// ErrInvalidHash.
func (h *Argon2Hasher) Verify(password, encoded string) (ok, needsRehash bool, err error) {
	return h.VerifyNotify(password, encoded, nil)
}

// VerifyNotify is Verify that calls started (when not nil), once the hash holds a hash slot
// and before it computes, with the time the hash is expected to end: the moving average of
// the recent hashes' compute time. A sign-in announces its append with it
// (domain.Expectation). started is not called when encoded is malformed.
func (h *Argon2Hasher) VerifyNotify(password, encoded string, started func(end time.Time)) (ok, needsRehash bool, err error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	got := h.key([]byte(password), salt, p, started)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, h.NeedsRehash(encoded), nil
}

// NeedsRehash reports whether a PHC string was made with parameters other than the
// hasher's (or is not one this hasher understands), so that the password should be hashed
// again at the next successful verification. Verify reports the same for a match.
func (h *Argon2Hasher) NeedsRehash(encoded string) bool {
	p, salt, _, err := parsePHC(encoded)
	return err != nil || p.m != h.cfg.MemoryKiB || p.t != h.cfg.Iterations || p.p != h.cfg.Parallelism ||
		p.keyLen != h.cfg.KeyLength || uint32(len(salt)) != h.cfg.SaltLength
}

// VerifyDummy spends the time of one verification against the dummy hash and reports
// nothing: used for unknown emails so that they cost what a known email costs.
func (h *Argon2Hasher) VerifyDummy(password string) {
	h.VerifyDummyNotify(password, nil)
}

// VerifyDummyNotify is VerifyDummy with VerifyNotify's started.
func (h *Argon2Hasher) VerifyDummyNotify(password string, started func(end time.Time)) {
	_, _, _ = h.VerifyNotify(password, h.dummy, started)
}

var b64 = base64.RawStdEncoding

type phcParams struct {
	m, t   uint32
	p      uint8
	keyLen uint32
}

func parsePHC(s string) (phcParams, []byte, []byte, error) {
	var p phcParams
	bad := func(why string) (phcParams, []byte, []byte, error) {
		return p, nil, nil, fmt.Errorf("%w: %s", ErrInvalidHash, why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("not a PHC string")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2id.Version) {
		return bad("unsupported argon2 version")
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, found := strings.Cut(kv, "=")
		if !found || seen[k] {
			return bad("bad parameters")
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("bad parameter " + k)
		}
		switch k {
		case "m":
			p.m = uint32(n)
		case "t":
			p.t = uint32(n)
		case "p":
			if n > 255 {
				return bad("parallelism out of range")
			}
			p.p = uint8(n)
		default:
			return bad("unknown parameter " + k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] || p.p == 0 || p.t == 0 || p.t > maxArgon2Iterations ||
		p.m < 8*uint32(p.p) || p.m > maxArgon2MemoryKiB {
		return bad("parameters out of range")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return bad("bad salt")
	}
	sum, err := b64.DecodeString(parts[5])
	if err != nil || len(sum) < 16 || len(sum) > 128 {
		return bad("bad hash")
	}
	p.keyLen = uint32(len(sum))
	return p, salt, sum, nil
}

// The defaults of PasswordPolicyConfig. The API reference (docs/API.md) and the portal's
// sign-up hint are generated from the policy in effect (PasswordPolicy.Rules and Hint), so
// these numbers are written here only.
const (
	DefaultPasswordMinLength = 12
	DefaultPasswordMaxLength = 256
	DefaultPasswordMinScore  = 3
)

// PasswordPolicyConfig configures NewPasswordPolicy. Zero values take the defaults shown.
type PasswordPolicyConfig struct {
	// MinLength in characters (runes); default DefaultPasswordMinLength.
	MinLength int
	// MaxLength in characters (runes); default DefaultPasswordMaxLength. It bounds hashing
	// work.
	MaxLength int
	// MinScore is the lowest acceptable zxcvbn score (0..4); default DefaultPasswordMinScore.
	MinScore int
}

// PasswordPolicy decides whether a new password is acceptable. It is safe for concurrent
// use.
type PasswordPolicy struct {
	cfg PasswordPolicyConfig
}

// NewPasswordPolicy validates cfg and returns the policy.
func NewPasswordPolicy(cfg PasswordPolicyConfig) (*PasswordPolicy, error) {
	if cfg.MinLength == 0 {
		cfg.MinLength = DefaultPasswordMinLength
	}
	if cfg.MaxLength == 0 {
		cfg.MaxLength = DefaultPasswordMaxLength
	}
	if cfg.MinScore == 0 {
		cfg.MinScore = DefaultPasswordMinScore
	}
	if cfg.MinLength < 1 || cfg.MaxLength < cfg.MinLength || cfg.MaxLength > 4096 {
		return nil, fmt.Errorf("password policy: bad length bounds %d..%d", cfg.MinLength, cfg.MaxLength)
	}
	if cfg.MinScore < 0 || cfg.MinScore > 4 {
		return nil, fmt.Errorf("password policy: MinScore %d is outside 0..4", cfg.MinScore)
	}
	return &PasswordPolicy{cfg: cfg}, nil
}

// Config returns the policy's settings, defaults filled in.
func (p *PasswordPolicy) Config() PasswordPolicyConfig { return p.cfg }

// Rules describes, one sentence each, what Check asks of a new password: for the API
// reference and for anyone who must explain a refusal.
func (p *PasswordPolicy) Rules() []string {
	return []string{
		fmt.Sprintf("%d to %d characters (counted as Unicode code points; spaces and any other characters are allowed), valid UTF-8.",
			p.cfg.MinLength, p.cfg.MaxLength),
		"It must not contain the local part of the account's email address (the part before the @, when it has at least 3 characters), in any letter case.",
		fmt.Sprintf("It must score at least %d of 4 on the zxcvbn strength estimator, which rates down commonly used passwords (its lists of the most frequent leaked passwords), "+
			"dictionary words and names by themselves, keyboard patterns, repeats, sequences, dates, predictable substitutions such as @ for a, "+
			"and the account's own email address and names.", p.cfg.MinScore),
		"A refused password answers 400 invalid_request; the problem's `errors` member names the field and gives every reason, with the estimator's feedback.",
	}
}

// Hint is the short advice shown under a new-password field.
func (p *PasswordPolicy) Hint() string {
	return fmt.Sprintf("At least %d characters, without your email address, and not a common password or a single word: "+
		"a long phrase of unrelated words works well.", p.cfg.MinLength)
}

// zxcvbnMaxRunes bounds the part of a password the estimator looks at: its matching is
// quadratic-ish in the length, and 100 characters are beyond any dictionary pattern that
// matters (zxcvbn's own implementations truncate likewise).
const zxcvbnMaxRunes = 100

// Check returns nil when password is acceptable for the account with this (normalised)
// email and these names, else a *PolicyError listing every reason: its length
// (MinLength..MaxLength characters, valid UTF-8), containing the email's local part
// (case-insensitive, when the local part has at least 3 characters), and a zxcvbn score
// below MinScore, with the estimator's feedback.
func (p *PasswordPolicy) Check(password, email string, names ...string) error {
	var reasons []string
	if !utf8.ValidString(password) {
		return &PolicyError{Reasons: []string{"The password is not valid UTF-8 text."}}
	}
	n := utf8.RuneCountInString(password)
	if n < p.cfg.MinLength {
		reasons = append(reasons, fmt.Sprintf("Use at least %d characters.", p.cfg.MinLength))
	}
	if n > p.cfg.MaxLength {
		return &PolicyError{Reasons: []string{fmt.Sprintf("Use at most %d characters.", p.cfg.MaxLength)}}
	}
	local, _, _ := strings.Cut(email, "@")
	lower := strings.ToLower(password)
	if utf8.RuneCountInString(local) >= 3 && strings.Contains(lower, strings.ToLower(local)) {
		reasons = append(reasons, "Do not use your email address in the password.")
	}
	if n >= p.cfg.MinLength {
		inputs := []string{email, local}
		for _, name := range names {
			if name != "" {
				inputs = append(inputs, strings.ToLower(name))
			}
		}
		score, feedback := estimateStrength(truncateRunes(password, zxcvbnMaxRunes), inputs)
		if score < p.cfg.MinScore {
			reasons = append(reasons, feedback...)
		}
	}
	if len(reasons) > 0 {
		return &PolicyError{Reasons: reasons}
	}
	return nil
}

func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
