// Package sealed keeps personal data out of the event log in clear: a Store wraps an
// eventstore.Store, seals every personal value before the append and opens it on every read,
// each under a data key of the account it belongs to. The keys live outside the log (a
// KeyStore: eventstore/sealed/keystore), so destroying an account's key erases its personal
// data from every event at once while the events themselves stay in the log, in order and
// verifiable by the hash chain (which covers the sealed bytes). This is crypto-shredding, the
// erasure API.md "Personal data and erasure" promises.
//
// # What is sealed
//
// The top-level members of an event's data that the registry declares personal for its type
// and schema version (Config.Personal), and Metadata.IP and Metadata.UserAgent. Members that
// are absent or JSON null, and empty IP or user agent, carry nothing and are left alone.
// Nested values are sealed whole with their member.
//
// # The sealed representation (version 1)
//
// A sealed value replaces the member's value (or the metadata string) with the JSON string
//
//	vigil:sealed:v1:<key id>:<payload>
//
// where
//
//   - key id names the data key in the KeyStore: 1 to 200 characters of A-Z a-z 0-9 . _ -
//     (AccountKeyID gives "account-<account id>", Hasher.IdentifierKeyID "identifier-<32 hex>",
//     UnownedKeyID is "unowned");
//   - payload is the unpadded base64url (RFC 4648 §5) encoding of nonce || ciphertext || tag:
//     AES-256-GCM with a random 12-byte nonce and a 16-byte tag, so at least 28 bytes;
//   - the plaintext is the member's JSON value exactly as appended (for IP and user agent, the
//     JSON string of the value);
//   - the associated data binds the value to its place, so that a sealed value copied to another
//     event or member does not open: the ASCII bytes "vigil:sealed:v1" followed by, for each of
//     the event id, the kind ("data" or "metadata"), the member name (the data member's name, or
//     "ip" / "user_agent") and the key id, its length as a uvarint and its bytes.
//   - an empty payload ("vigil:sealed:v1:<key id>:") is a value erased on arrival: it was
//     appended after its key had been destroyed, so nothing was kept.
//
// The string holds no character JSON escapes, so it is also what the raw bytes of the log show.
// Its length leaks the length of the value (no padding). The log never holds a personal value
// in clear, nor a hash of one that is not keyed.
//
// # Reading
//
// Every read path (ReadStream, ReadAll, Subscribe, ReadSubject) opens the sealed values of the
// members declared personal. A value whose key was destroyed, or that was erased on arrival,
// reads as the JSON string "[erased]" (Erased). A sealed value that does not parse or does not
// open under its key (altered, or moved from another event) is tampering: the read fails with an
// error wrapping ErrTampered, never "[erased]"; a key the KeyStore never held fails with
// ErrUnknownKey. Values of personal members that are not sealed (events appended before sealing
// was switched on) are returned as stored, and values that look sealed in members not declared
// personal are never opened.
package sealed
