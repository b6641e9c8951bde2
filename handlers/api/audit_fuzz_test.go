package api

import (
	"testing"

	"github.com/vigil-auth/vigil/projections"
)

// FuzzEventsCursor: an audit events cursor is accepted only as encodeEventsCursor wrote it
// for that account (a decoded cursor re-encodes to the same string), with a position > 0.
func FuzzEventsCursor(f *testing.F) {
	for _, s := range []struct {
		account, cursor string
	}{
		{"acc-1", encodeEventsCursor("acc-1", 5)}, {"acc-2", encodeEventsCursor("acc-1", 5)}, {"a:b", encodeEventsCursor("a:b", 1<<64-1)},
		{"acc", ""}, {"acc", "ZXY6MDA1OmFjYw"}, {"acc", "ZXY6NTphY2M="}, {"acc", "ZXY6NTphY2M\n"}, {"acc", "ZXY6MDphY2M"},
		{"acc", "ZXY6LTE6YWNj"}, {"acc", "%%%"}, {"", "ZXY6NTo"},
	} {
		f.Add(s.account, s.cursor)
	}
	f.Fuzz(func(t *testing.T, account, cursor string) {
		pos, err := DecodeEventsCursor(account, cursor)
		if err != nil {
			if err != projections.ErrBadCursor {
				t.Fatalf("decodeEventsCursor(%q, %q): %v", account, cursor, err)
			}
			return
		}
		if pos == 0 {
			t.Fatalf("decodeEventsCursor(%q, %q) = 0", account, cursor)
		}
		if again := encodeEventsCursor(account, pos); again != cursor {
			t.Fatalf("decodeEventsCursor(%q, %q) = %d, which encodes as %q", account, cursor, pos, again)
		}
	})
}
