package sealed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vigil-auth/vigil/domain"
)

// member is one top-level member of a JSON object, its value as raw JSON.
type member struct {
	name  string
	value json.RawMessage
}

// objectMembers splits a JSON object into its members, in order, values byte for byte as they
// were; ok is false when data is not an object. Repeated names are kept, each one. It scans by
// hand (appends are checked to be valid JSON first): json.Decoder cost half of sealing.
func objectMembers(data []byte) (members []member, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil, skipSpace(data, i+1) == len(data)
	}
	members = make([]member, 0, 8)
	for {
		end := stringEnd(data, i)
		if end < 0 {
			return nil, false
		}
		name := string(data[i+1 : end-1])
		// Escapes, and bytes that are not UTF-8 (which encoding/json reads as U+FFFD), take
		// the decoder's path, so that names match what every other reader of the data sees.
		if bytes.IndexByte(data[i:end], '\\') >= 0 || !utf8.ValidString(name) {
			if json.Unmarshal(data[i:end], &name) != nil {
				return nil, false
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 {
			return nil, false
		}
		members = append(members, member{name, data[i:vend:vend]})
		i = skipSpace(data, vend)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return members, skipSpace(data, i+1) == len(data)
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string starting at b[i], or -1.
func stringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index after the JSON value starting at b[i], or -1. It tracks nesting
// and strings only: the value was valid JSON when appended.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// writeObject writes members back as a compact JSON object.
func writeObject(members []member, sizeHint int) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, sizeHint))
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(buf, m.name)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// writeJSONString writes s as a JSON string; the common plain ASCII case without an allocation.
func writeJSONString(buf *bytes.Buffer, s string) {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	b, _ := json.Marshal(s) // a Go string always marshals
	buf.Write(b)
}

// jsonString is the JSON encoding of a string known to need no escape (sealed values, Erased).
func jsonString(s string) json.RawMessage { return json.RawMessage(`"` + s + `"`) }

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// seal returns ev with its personal values sealed; changed is false when it holds none.
func (s *Store) seal(ctx context.Context, stream string, ev domain.EventData) (domain.EventData, bool, error) {
	personal := s.personal(ev.Type, ev.SchemaVersion)
	var members []member
	hit := false
	if len(personal) > 0 {
		var isObject bool
		members, isObject = objectMembers(ev.Data)
		if isObject {
			for _, m := range members {
				if !isNull(m.value) && slices.Contains(personal, m.name) {
					hit = true
					break
				}
			}
		}
	}
	if !hit && ev.Metadata.IP == "" && ev.Metadata.UserAgent == "" {
		return ev, false, nil
	}
	keyID, ok := s.owner(ev, stream)
	if !ok {
		keyID = UnownedKeyID
	}
	if !ValidKeyID(keyID) {
		return ev, false, fmt.Errorf("sealed: event %s (%s): the owner function named an invalid key id %q", ev.ID, ev.Type, truncate(keyID))
	}
	k, err := s.keyFor(ctx, keyID, true)
	if err != nil {
		return ev, false, fmt.Errorf("sealed: key for event %s (%s): %w", ev.ID, ev.Type, err)
	}
	sealOne := func(kind, name string, plaintext []byte) string {
		if k.destroyed {
			return erasedOnArrival(keyID)
		}
		return sealValue(k.aead, keyID, ev.ID, kind, name, plaintext)
	}
	if hit {
		out := make([]member, len(members))
		for i, m := range members {
			if !isNull(m.value) && slices.Contains(personal, m.name) {
				m.value = jsonString(sealOne(kindData, m.name, m.value))
			}
			out[i] = m
		}
		ev.Data = writeObject(out, len(ev.Data)*2)
	}
	for _, f := range [...]struct {
		name string
		v    *string
	}{{memberIP, &ev.Metadata.IP}, {memberUserAgent, &ev.Metadata.UserAgent}} {
		if *f.v != "" {
			plain, _ := json.Marshal(*f.v)
			*f.v = sealOne(kindMetadata, f.name, plain)
		}
	}
	return ev, true, nil
}

var prefixBytes = []byte(Prefix)

// open opens the sealed values of e in place.
func (s *Store) open(ctx context.Context, e *domain.Envelope) error {
	personal := s.personal(e.Type, e.SchemaVersion)
	if len(personal) > 0 && bytes.Contains(e.Data, prefixBytes) {
		if err := s.openData(ctx, e, personal); err != nil {
			return err
		}
	}
	for _, f := range [...]struct {
		name string
		v    *string
	}{{memberIP, &e.Metadata.IP}, {memberUserAgent, &e.Metadata.UserAgent}} {
		if !strings.HasPrefix(*f.v, Prefix) {
			continue
		}
		plain, err := s.openString(ctx, e, kindMetadata, f.name, *f.v)
		if err != nil {
			return err
		}
		if plain == nil {
			*f.v = Erased
			continue
		}
		if err := json.Unmarshal(plain, f.v); err != nil {
			return s.openError(e, kindMetadata, f.name, fmt.Errorf("%w: opened to %d bytes that are not a JSON string", ErrTampered, len(plain)))
		}
	}
	return nil
}

func (s *Store) openData(ctx context.Context, e *domain.Envelope, personal []string) error {
	members, ok := objectMembers(e.Data)
	if !ok {
		return nil
	}
	changed := false
	for i, m := range members {
		if len(m.value) == 0 || m.value[0] != '"' || !bytes.Contains(m.value, prefixBytes) || !slices.Contains(personal, m.name) {
			continue
		}
		var str string
		if json.Unmarshal(m.value, &str) != nil || !strings.HasPrefix(str, Prefix) {
			continue
		}
		plain, err := s.openString(ctx, e, kindData, m.name, str)
		if err != nil {
			return err
		}
		if plain == nil {
			members[i].value = jsonString(Erased)
		} else {
			members[i].value = plain
		}
		changed = true
	}
	if changed {
		e.Data = writeObject(members, len(e.Data))
	}
	return nil
}

// openString opens one sealed value: the plaintext JSON, or nil when it is erased.
func (s *Store) openString(ctx context.Context, e *domain.Envelope, kind, name, str string) ([]byte, error) {
	v, err := parseSealed(str)
	if err != nil {
		return nil, s.openError(e, kind, name, fmt.Errorf("%w: %w", ErrTampered, err))
	}
	if len(v.payload) == 0 {
		return nil, nil
	}
	k, err := s.keyFor(ctx, v.keyID, false)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, s.openError(e, kind, name, fmt.Errorf("%w (%s)", ErrUnknownKey, v.keyID))
	}
	if err != nil {
		return nil, s.openError(e, kind, name, err)
	}
	if k.destroyed {
		return nil, nil
	}
	plain, err := openValue(k.aead, v, e.ID, kind, name)
	if err != nil {
		return nil, s.openError(e, kind, name, fmt.Errorf("%w: it does not open under key %s", ErrTampered, v.keyID))
	}
	if kind == kindData && !json.Valid(plain) {
		return nil, s.openError(e, kind, name, fmt.Errorf("%w: opened to bytes that are not JSON", ErrTampered))
	}
	return plain, nil
}

func (s *Store) openError(e *domain.Envelope, kind, name string, err error) error {
	return fmt.Errorf("sealed: event %s (%s, position %d), %s member %q: %w", e.ID, e.Type, e.Position, kind, name, err)
}

// SealEvent seals ev's personal values as Append would in stream, without appending: for
// `vigil log migrate`, which copies the events of a log written before sealing into a new log
// keeping their ids, so that the values open there. changed is false when ev holds nothing to
// seal. An event that already holds a sealed value (a log sealed once already) is refused:
// sealing it again would bury the value under a second key that reads would not open.
func (s *Store) SealEvent(ctx context.Context, stream string, ev domain.EventData) (out domain.EventData, changed bool, err error) {
	sealedValue := func(v string) bool { return strings.HasPrefix(v, Prefix) }
	already := sealedValue(ev.Metadata.IP) || sealedValue(ev.Metadata.UserAgent)
	if personal := s.personal(ev.Type, ev.SchemaVersion); !already && len(personal) > 0 && bytes.Contains(ev.Data, prefixBytes) {
		members, _ := objectMembers(ev.Data)
		for _, m := range members {
			var v string
			if slices.Contains(personal, m.name) && json.Unmarshal(m.value, &v) == nil && sealedValue(v) {
				already = true
			}
		}
	}
	if already {
		return ev, false, fmt.Errorf("sealed: event %s (%s) already holds sealed values", ev.ID, ev.Type)
	}
	return s.seal(ctx, stream, ev)
}
