// Package eventsample builds sample values of event structs for tests: every field filled
// with a non-zero value, strings and bytes with markers that occur nowhere else, so that a
// test can marshal the sample, see every JSON member the struct can produce (omitempty ones
// too) and search an output for a value that must not be there. It is test support for
// domain and domain/export; the server does not use it.
package eventsample

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"time"
)

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// Filler fills values; each marker it writes is unique within one Filler. Not safe for
// concurrent use.
type Filler struct {
	// Prefix starts every string and byte marker (default "sample").
	Prefix string
	n      int
}

func (f *Filler) next() int {
	f.n++
	return f.n
}

func (f *Filler) marker() string {
	p := f.Prefix
	if p == "" {
		p = "sample"
	}
	return p + "-" + strconv.Itoa(f.next()) + "-value"
}

// Of returns a value of proto's type (an event struct, or a pointer to one) with every
// exported field filled as Fill does.
func (f *Filler) Of(proto any) (any, error) {
	t := reflect.TypeOf(proto)
	if t == nil {
		return nil, fmt.Errorf("eventsample: nil prototype")
	}
	v := reflect.New(t).Elem()
	if err := f.Fill(v, t.String()); err != nil {
		return nil, err
	}
	return v.Interface(), nil
}

// Fill sets v (settable) and everything reachable from it to non-zero values: strings and
// byte slices to unique markers, json.RawMessage to a JSON string marker, numbers to
// distinct values >= 1000, booleans to true, times to distinct instants, slices and maps to
// two elements, pointers to a filled value. path names v in errors. Interfaces, functions
// and channels cannot be sampled and give an error naming their path.
func (f *Filler) Fill(v reflect.Value, path string) error {
	if !v.CanSet() {
		return nil // unexported: not marshalled by encoding/json
	}
	t := v.Type()
	switch {
	case t == timeType:
		v.Set(reflect.ValueOf(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(f.next()) * time.Second)))
		return nil
	case t == rawType:
		b, _ := json.Marshal(f.marker())
		v.SetBytes(b)
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(f.marker())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := int64(f.next() + 1000)
		if v.OverflowInt(n) {
			n = int64(f.next()%100 + 1)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n := uint64(f.next() + 1000)
		if v.OverflowUint(n) {
			n = uint64(f.next()%100 + 1)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.next()) + 1000.5)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(f.marker()))
			return nil
		}
		s := reflect.MakeSlice(t, 2, 2)
		for i := range 2 {
			if err := f.Fill(s.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			if err := f.Fill(v.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Map:
		m := reflect.MakeMap(t)
		for i := range 2 {
			k := reflect.New(t.Key()).Elem()
			if err := f.Fill(k, path+".key"); err != nil {
				return err
			}
			e := reflect.New(t.Elem()).Elem()
			if err := f.Fill(e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := f.Fill(p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Struct:
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() && !sf.Anonymous {
				continue
			}
			if err := f.Fill(v.Field(i), path+"."+sf.Name); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("eventsample: cannot fill %s (%s): give the event a concrete type", path, t)
	}
	return nil
}

// Members returns the top-level JSON members of data (an object), sorted; an error when
// data is not an object.
func Members(data []byte) ([]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("eventsample: data is not an object: %s", data)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Strings returns every string anywhere inside the JSON value raw (object members' values
// and array elements, recursively; not object keys).
func Strings(raw []byte) []string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
