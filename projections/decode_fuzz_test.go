package projections

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the decoders in this package that read what clients send: list cursors
// (the `cursor` query parameter) and User-Agent headers. .ci/fuzz runs each for a few
// seconds; `go test` runs the seeds.

// FuzzDecodeCursor: a cursor is accepted only as encodeCursor wrote it, so a decoded
// cursor re-encodes to the same string (one position, one cursor), and a position in
// [1, 2^63) survives the round trip.
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []struct {
		kind, cursor string
	}{
		{"a", ""}, {"a", encodeCursor("a", 1)}, {"s", encodeCursor("s", 1<<62)}, {"a", encodeCursor("s", 7)},
		{"a", "YTow"}, {"a", "YTowNw"}, {"a", "YTotMQ"}, {"a", "YTorNw"}, {"a", "YTo5MjIzMzcyMDM2ODU0Nzc1ODA4"},
		{"a", "YTo3"}, {"a", "YTo3="}, {"a", "YTo3\n"}, {"a", "YTo4"}, {"a", "YTo5"}, {"a", "!!!"}, {"s", "czo"},
		{"a", "YTo3Og"}, {"a", strings.Repeat("A", 600)},
	} {
		f.Add(s.kind, s.cursor)
	}
	f.Fuzz(func(t *testing.T, kind, cursor string) {
		pos, err := decodeCursor(kind, cursor)
		if err != nil {
			if err != ErrBadCursor {
				t.Fatalf("decodeCursor(%q, %q): error %v, want ErrBadCursor", kind, cursor, err)
			}
			return
		}
		if cursor == "" {
			if pos != 0 {
				t.Fatalf("empty cursor gave %d", pos)
			}
			return
		}
		if pos == 0 || pos >= 1<<63 {
			t.Fatalf("decodeCursor(%q, %q) = %d, out of range", kind, cursor, pos)
		}
		if again := encodeCursor(kind, pos); again != cursor {
			t.Fatalf("decodeCursor(%q, %q) = %d, which encodes as %q", kind, cursor, pos, again)
		}
	})
}

// FuzzEncodeCursor: every position a list can resume after decodes back from its cursor.
func FuzzEncodeCursor(f *testing.F) {
	f.Add("a", uint64(1))
	f.Add("s", uint64(1<<63-1))
	f.Fuzz(func(t *testing.T, kind string, pos uint64) {
		if pos == 0 || pos >= 1<<63 || strings.Contains(kind, ":") {
			return
		}
		c := encodeCursor(kind, pos)
		if got, err := decodeCursor(kind, c); err != nil || got != pos {
			t.Fatalf("encodeCursor(%q, %d) = %q decodes to %d, %v", kind, pos, c, got, err)
		}
	})
}

// FuzzDecodeMemberCursor: the org member list's cursor, as FuzzDecodeCursor.
func FuzzDecodeMemberCursor(f *testing.F) {
	for _, c := range []string{"", encodeMemberCursor("acc-1"), encodeMemberCursor("a:b"), "bTo", "bTph", "bTphPQ",
		"bTph\n", "bTpi", "YTph", "***", encodeMemberCursor(strings.Repeat("x", 300))} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		id, err := decodeMemberCursor(cursor)
		if err != nil {
			if err != ErrBadCursor {
				t.Fatalf("decodeMemberCursor(%q): error %v", cursor, err)
			}
			return
		}
		if cursor == "" {
			if id != "" {
				t.Fatalf("empty cursor gave %q", id)
			}
			return
		}
		if id == "" {
			t.Fatalf("decodeMemberCursor(%q) accepted an empty id", cursor)
		}
		if again := encodeMemberCursor(id); again != cursor {
			t.Fatalf("decodeMemberCursor(%q) = %q, which encodes as %q", cursor, id, again)
		}
	})
}

// FuzzParseUserAgent: any header parses (no panic) to a bounded, consistent Agent: the
// names are at most maxAgentName bytes, the form factor is one of five, a browser has a
// form factor and a device, the access type follows IsBrowser, the cache answers what the
// parser does, and a string that is valid UTF-8 gives valid UTF-8.
func FuzzParseUserAgent(f *testing.F) {
	for _, s := range []string{
		"", "curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
		"garbage (with; parentheses)", "((((((((((", "Mozilla/5.0 (" + strings.Repeat("a;", 600) + ")",
		"x/" + strings.Repeat("9", 40), "Chrome/\xff\xfe", "\x00\r\n\t", "Mozilla/5.0 (Linux; Android 14; " + strings.Repeat("P", 100) + ") Chrome/1.0 Mobile",
		"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) Version/17.5 Mobile/15E148 Safari/604.1 Edg/9999999999999999999999",
	} {
		f.Add(s)
	}
	forms := map[string]bool{"": true, "desktop": true, "mobile": true, "tablet": true, "bot": true}
	f.Fuzz(func(t *testing.T, s string) {
		a := ParseUserAgent(s)
		in := s
		if len(in) > 1024 {
			in = in[:1024]
		}
		if b := parseAgent(in); a != b {
			t.Fatalf("ParseUserAgent(%q) = %+v, the parser says %+v", s, a, b)
		}
		if len(a.OS) > maxAgentName || len(a.Device) > maxAgentName || len(a.Browser) > maxAgentName+21 || len(a.Details) > 512 {
			t.Fatalf("ParseUserAgent(%q): a field is too long: %+v", s, a)
		}
		if !forms[a.FormFactor] {
			t.Fatalf("ParseUserAgent(%q): form factor %q", s, a.FormFactor)
		}
		if a.IsBrowser && (a.FormFactor == "" || a.FormFactor == "bot" || a.Device == "") {
			t.Fatalf("ParseUserAgent(%q): a browser without form factor or device: %+v", s, a)
		}
		if (a.AccessType() == "browser") != a.IsBrowser {
			t.Fatalf("ParseUserAgent(%q): access type %q, IsBrowser %v", s, a.AccessType(), a.IsBrowser)
		}
		if s == "" && a != (Agent{}) {
			t.Fatalf("the empty user agent gave %+v", a)
		}
		if utf8.ValidString(in) {
			for _, v := range []string{a.Browser, a.OS, a.Device, a.Details} {
				if !utf8.ValidString(v) {
					t.Fatalf("ParseUserAgent(%q): invalid UTF-8 in %q", s, v)
				}
			}
		}
	})
}
