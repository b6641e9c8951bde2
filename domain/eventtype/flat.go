package eventtype

import (
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// A FlatDecoder decodes the JSON data of one event struct type without encoding/json's
// reflection and its separate validating pass, for the data the log nearly always holds: one
// flat object whose members are exactly the struct's fields, each at most once, with plain
// strings (no escape, valid UTF-8), booleans, integers, string arrays and RFC 3339 times.
// Anything else (an unknown or differently cased member, null, an escape, a number with a
// fraction, a nested value, a time that does not parse, trailing data, invalid JSON) makes
// Decode report false, and the caller decodes with json.Unmarshal from a fresh zero value:
// when Decode reports true, the struct holds exactly what json.Unmarshal would have stored in
// a zero one (TestFlatDecoderIsJSONUnmarshal, FuzzFlatDecoder).
//
// A struct with a field of any other type, an embedded field or a ",string" option gets a
// decoder that always reports false (Eligible tells).
type FlatDecoder struct {
	ptr    reflect.Type // *T
	fields []flatField  // nil when T is not eligible
}

type flatKind uint8

const (
	flatString flatKind = iota
	flatBool
	flatInt
	flatStrings
	flatTime
)

type flatField struct {
	name string
	kind flatKind
	off  uintptr
	bits int // an integer's size in bits
}

var timeType = reflect.TypeFor[time.Time]()

// NewFlatDecoder returns the decoder of t, a struct type.
func NewFlatDecoder(t reflect.Type) *FlatDecoder {
	d := &FlatDecoder{ptr: reflect.PointerTo(t)}
	if t.Kind() != reflect.Struct || t.NumField() > 64 {
		return d
	}
	var fields []flatField
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return d
		}
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			if tag == "-" {
				continue
			}
			n, opts, _ := strings.Cut(tag, ",")
			if n != "" {
				name = n
			}
			for opts != "" {
				var o string
				o, opts, _ = strings.Cut(opts, ",")
				if o != "omitempty" && o != "omitzero" {
					return d // ",string" and options this decoder does not know
				}
			}
		}
		if seen[name] || !plainKey(name) {
			return d
		}
		seen[name] = true
		ff := flatField{name: name, off: f.Offset}
		switch {
		case f.Type == timeType:
			ff.kind = flatTime
		case f.Type.Kind() == reflect.String && f.Type.PkgPath() == "":
			ff.kind = flatString
		case f.Type.Kind() == reflect.Bool && f.Type.PkgPath() == "":
			ff.kind = flatBool
		case f.Type == reflect.TypeFor[int]() || f.Type == reflect.TypeFor[int64]() || f.Type == reflect.TypeFor[int32]():
			ff.kind, ff.bits = flatInt, f.Type.Bits()
		case f.Type == reflect.TypeFor[[]string]():
			ff.kind = flatStrings
		default:
			return d
		}
		fields = append(fields, ff)
	}
	d.fields = fields
	if d.fields == nil {
		d.fields = []flatField{}
	}
	return d
}

// plainKey reports whether a member name is one Decode can match byte for byte: ASCII
// letters, digits, '_', '-' and '.', all of which encoding/json takes as a tag's name
// (encoding/json would also match other casings of it; Decode leaves those to it).
func plainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

// Eligible reports whether Decode can ever report true: the struct's fields are all of the
// kinds it reads.
func (d *FlatDecoder) Eligible() bool { return d.fields != nil }

// Decode fills *ptr (a pointer to a zero value of the decoder's type) from data and reports
// true, or reports false and leaves *ptr in any state: see FlatDecoder.
func (d *FlatDecoder) Decode(data []byte, ptr any) bool {
	if d.fields == nil || reflect.TypeOf(ptr) != d.ptr {
		return false
	}
	p := reflect.ValueOf(ptr).UnsafePointer()
	if p == nil {
		return false
	}
	s := flatScanner{b: data}
	s.space()
	if !s.byte('{') {
		return false
	}
	var seen uint64
	s.space()
	if !s.byte('}') {
		for {
			key, ok := s.str()
			if !ok {
				return false
			}
			i := d.field(key)
			if i < 0 || seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			s.space()
			if !s.byte(':') {
				return false
			}
			s.space()
			if !s.value(&d.fields[i], p) {
				return false
			}
			if more, ok := s.next('}'); !ok {
				return false
			} else if !more {
				break
			}
		}
	}
	s.space()
	return s.i == len(s.b)
}

// field returns the index of the field named key, or -1.
func (d *FlatDecoder) field(key []byte) int {
	for i := range d.fields {
		if d.fields[i].name == string(key) {
			return i
		}
	}
	return -1
}

type flatScanner struct {
	b []byte
	i int
}

func (s *flatScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *flatScanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// next reads what follows a member or an element: a comma and the space after it (more), or
// the closing byte (not more); ok is false for anything else.
func (s *flatScanner) next(closing byte) (more, ok bool) {
	s.space()
	if s.byte(',') {
		s.space()
		return true, true
	}
	return false, s.byte(closing)
}

// str reads a string without escapes whose bytes are valid UTF-8 (the bytes between the
// quotes, which are then its value).
func (s *flatScanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return nil, false
}

// value reads f's value into the struct at p.
func (s *flatScanner) value(f *flatField, p unsafe.Pointer) bool {
	at := unsafe.Add(p, f.off)
	switch f.kind {
	case flatString:
		v, ok := s.str()
		if !ok {
			return false
		}
		*(*string)(at) = string(v)
	case flatBool:
		switch {
		case s.lit("true"):
			*(*bool)(at) = true
		case s.lit("false"):
			*(*bool)(at) = false
		default:
			return false
		}
	case flatInt:
		start := s.i
		s.byte('-')
		digits := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		// JSON's integers: at least one digit, no leading zero; a fraction or an exponent
		// (which encoding/json refuses for an integer field) ends the fast path here.
		if s.i == digits || (s.b[digits] == '0' && s.i-digits > 1) {
			return false
		}
		if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
			return false
		}
		n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, f.bits)
		if err != nil {
			return false
		}
		switch f.bits {
		case 32:
			*(*int32)(at) = int32(n)
		default:
			*(*int64)(at) = n
		}
	case flatStrings:
		if !s.byte('[') {
			return false
		}
		out := []string{}
		s.space()
		if !s.byte(']') {
			for {
				v, ok := s.str()
				if !ok {
					return false
				}
				out = append(out, string(v))
				if more, ok := s.next(']'); !ok {
					return false
				} else if !more {
					break
				}
			}
		}
		*(*[]string)(at) = out
	case flatTime:
		start := s.i
		if _, ok := s.str(); !ok {
			return false
		}
		if err := (*time.Time)(at).UnmarshalJSON(s.b[start:s.i]); err != nil {
			return false
		}
	default:
		return false
	}
	return true
}

// lit reads the literal w.
func (s *flatScanner) lit(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}
