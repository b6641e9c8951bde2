package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the decoders in this package that read what clients send: JSON bodies,
// the portal's `next`, X-Forwarded-For, the query parameters of the lists and of the event
// routes, and the audit cursor. .ci/fuzz runs each for a few seconds; `go test` runs the
// seeds. The whole API and the portal's forms are fuzzed through the real app in
// cmd/vigil/app (fuzz_test.go).

// fuzzBody has a field of every kind the request bodies use.
type fuzzBody struct {
	Email    string            `json:"email"`
	Password *string           `json:"password"`
	Limit    int               `json:"limit"`
	Flag     bool              `json:"sign_out_other_sessions"`
	Scopes   []string          `json:"scopes"`
	Labels   map[string]string `json:"labels"`
	Ratio    float64           `json:"ratio"`
	Profile  struct {
		City string `json:"city"`
		Age  uint8  `json:"age"`
	} `json:"profile"`
	Credential json.RawMessage `json:"credential"`
}

// FuzzDecodeStrict: any body gives either a decoded value or a 400 invalid_request with a
// short, valid UTF-8 detail (never a 500); an accepted body's value encodes to a body that
// is accepted again with the same value.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"pw","limit":3,"sign_out_other_sessions":true}`,
		`{"scopes":["a","b"],"labels":{"k":"v"},"ratio":1.5e3,"profile":{"city":"Oslo","age":7}}`,
		`{"credential":{"id":"x","response":{"clientDataJSON":"e30"}}}`, `{"credential":null,"password":null}`,
		``, ` `, `null`, `[]`, `"x"`, `{}`, `{}{}`, `{} x`, `{"email":1}`, `{"limit":1e400}`, `{"profile":{"age":300}}`,
		`{"limit":-1}`, `{"unknown":1}`, `{"` + strings.Repeat("u", 200) + `":1}`, `{"email":"\ud800"}`, "{\"email\":\"\xff\"}",
		`{"email":"a"`, `{"scopes":[1]}`, `{"labels":{"k":[]}}`, strings.Repeat(`{"profile":`, 50), "\ufeff{}",
		`{"email":"a","email":"b"}`, `{"EMAIL":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v fuzzBody
		err := decodeStrict(body, &v)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("decodeStrict(%q): %v is not invalid_request", body, err)
			}
			pr, known := ProblemFor(err)
			if !known || pr.Status != http.StatusBadRequest || pr.Detail == "" || len(pr.Detail) > 200 || !utf8.ValidString(pr.Detail) {
				t.Fatalf("decodeStrict(%q): problem %d %q", body, pr.Status, pr.Detail)
			}
			return
		}
		again, merr := json.Marshal(v)
		if merr != nil {
			t.Fatalf("decodeStrict(%q) accepted a value that does not encode: %v", body, merr)
		}
		var w fuzzBody
		if err := decodeStrict(again, &w); err != nil {
			t.Fatalf("decodeStrict(%q) accepted; its value %s is refused: %v", body, again, err)
		}
		if twice, _ := json.Marshal(w); !bytes.Equal(twice, again) {
			t.Fatalf("decodeStrict(%q): %s then %s", body, again, twice)
		}
	})
}

// FuzzClientIP: the client address is "" exactly when the peer is not an address, else a
// canonical IP (no zone, IPv4 not mapped into IPv6): the peer itself when it is not a
// trusted proxy, else the peer or an X-Forwarded-For entry.
func FuzzClientIP(f *testing.F) {
	for _, s := range [][3]string{
		{"203.0.113.7:5000", "", ""}, {"10.0.0.1:443", "198.51.100.2", ""}, {"10.0.0.1:443", "198.51.100.2, 10.0.0.9", "10.0.0.8"},
		{"[::1]:80", "2001:db8::1, ::ffff:192.0.2.1", ""}, {"127.0.0.1:1", "fe80::1%eth0", "garbage"}, {"127.0.0.1:1", " , ,", ""},
		{"[fe80::1%eth0]:80", "1.2.3.4", ""}, {"not an address", "1.2.3.4", ""}, {"10.0.0.1:1", "[2001:db8::2]:443", "1.2.3.4:80"},
		{"10.0.0.1:1", "unknown, 10.0.0.3", ""}, {"::ffff:10.0.0.1", "::ffff:203.0.113.9", ""}, {"10.0.0.1:1", "1.2.3.4\n, 5.6.7.8", ""},
		{"", "", ""}, {"10.0.0.1:1", "0177.0.0.1", "1.2.3.04"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		var entries []string
		for _, h := range []string{xff1, xff2} {
			if h != "" {
				r.Header.Add("X-Forwarded-For", h)
				entries = append(entries, strings.Split(h, ",")...)
			}
		}
		got := clientIP(r, trusted)
		peer, ok := parseHop(remote)
		if !ok {
			if got != "" {
				t.Fatalf("clientIP(%q) = %q for a peer that is not an address", remote, got)
			}
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil || a.Zone() != "" || a.Is4In6() || a.String() != got {
			t.Fatalf("clientIP(%q, %q, %q) = %q, not a canonical address", remote, xff1, xff2, got)
		}
		if !isTrusted(peer, trusted) {
			if a != peer {
				t.Fatalf("clientIP(%q) = %q from an untrusted peer's header", remote, got)
			}
			return
		}
		if a == peer {
			return
		}
		for _, e := range entries {
			if h, ok := parseHop(strings.TrimSpace(e)); ok && h == a {
				return
			}
		}
		t.Fatalf("clientIP(%q, %q, %q) = %q, which is neither the peer nor an entry", remote, xff1, xff2, got)
	})
}

// FuzzParseHop: an accepted hop is an address without zone or IPv4 mapping, and its text
// parses back to itself.
func FuzzParseHop(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80", "fe80::1%eth0", "[fe80::1%25eth0]:1", "::ffff:1.2.3.4",
		"[::ffff:1.2.3.4]:443", "1.2.3.4:", ":80", "[1.2.3.4]:80", "01.2.3.4", "1.2.3.4:99999", "", " 1.2.3.4", "1.2.3.4\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseHop(s)
		if !ok {
			if a.IsValid() {
				t.Fatalf("parseHop(%q) refused but gave %v", s, a)
			}
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("parseHop(%q) = %v", s, a)
		}
		if b, ok := parseHop(a.String()); !ok || b != a {
			t.Fatalf("parseHop(%q) = %v, which parses back as %v, %v", s, a, b, ok)
		}
	})
}
