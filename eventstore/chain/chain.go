// Package chain is the integrity layer of Vigil's event log: the canonical bytes of a stored
// event, the hash chain over them, Ed25519-signed checkpoints of that chain and the keys that
// sign them, the export format an outside auditor checks, and the verifier that recomputes
// the chain and names the first position where a log was tampered with.
//
// Every event's hash is SHA-256 over the previous event's hash (32 zero bytes before the first
// event) followed by the event's canonical bytes, written as lowercase hex. The canonical bytes
// are the stored fields, in a fixed order, each length-prefixed (see AppendCanonical); README's
// "Integrity of the log" documents them so that anyone can re-implement the check.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
)

// Size is the length of a chain hash in bytes.
const Size = sha256.Size

// Sum is a chain hash.
type Sum [Size]byte

// Zero is the hash that precedes the first event of a log.
var Zero Sum

// String is the lowercase hex form used everywhere outside the hashing itself.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// ParseSum reads a lowercase (or uppercase) hex hash; "" is Zero, the hash before the first
// event.
func ParseSum(h string) (Sum, error) {
	var s Sum
	if h == "" {
		return s, nil
	}
	if len(h) != 2*Size {
		return s, fmt.Errorf("chain: hash %q is not %d hex digits", h, 2*Size)
	}
	if _, err := hex.Decode(s[:], []byte(h)); err != nil {
		return s, fmt.Errorf("chain: hash %q is not hex", h)
	}
	return s, nil
}

// AppendCanonical appends the canonical bytes of e to dst and returns the result. Each string
// or byte field is a 4-byte big-endian length followed by its bytes; each number is 8 bytes
// big-endian (two's complement for signed ones). The order is fixed:
//
//	id, stream, version (u64), position (u64), type, schema_version (i64),
//	recorded_at (i64, Unix nanoseconds UTC), data (the JSON bytes as stored),
//	metadata.actor.type, metadata.actor.id, metadata.subject_account_id, metadata.ip,
//	metadata.user_agent, metadata.client_id, metadata.correlation_id, metadata.causation_id
//
// Length prefixes make the encoding unambiguous (no field can bleed into the next), and
// metadata is encoded field by field, so that both backends, which store it differently,
// hash the same bytes. The hash is not part of its own input.
func AppendCanonical(dst []byte, e *domain.Envelope) []byte {
	str := func(s string) {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	num := func(n uint64) { dst = binary.BigEndian.AppendUint64(dst, n) }
	str(e.ID)
	str(e.StreamID)
	num(e.Version)
	num(e.Position)
	str(e.Type)
	num(uint64(int64(e.SchemaVersion)))
	num(uint64(e.RecordedAt.UnixNano()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Data)))
	dst = append(dst, e.Data...)
	md := &e.Metadata
	str(string(md.Actor.Type))
	str(md.Actor.ID)
	str(md.SubjectAccountID)
	str(md.IP)
	str(md.UserAgent)
	str(md.ClientID)
	str(md.CorrelationID)
	str(md.CausationID)
	return dst
}

// Hasher computes successive chain hashes, reusing one buffer: the SQLite writer and the
// verifier hash millions of events and should not allocate for each.
type Hasher struct{ buf []byte }

// Next returns the hash of e following prev.
func (h *Hasher) Next(prev Sum, e *domain.Envelope) Sum {
	h.buf = append(h.buf[:0], prev[:]...)
	h.buf = AppendCanonical(h.buf, e)
	return sha256.Sum256(h.buf)
}

// Next returns the hash of e following prev (both as Sums); see Hasher for loops.
func Next(prev Sum, e *domain.Envelope) Sum {
	var h Hasher
	return h.Next(prev, e)
}
