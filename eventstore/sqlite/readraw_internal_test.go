package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// TestReadAllRawEqualsDatabaseSQL: a large ReadAll page, read through SQLite's own interface
// (readAllRaw), gives every event exactly as the database/sql read of small pages does: every
// field, empty ones, long ones, NUL bytes and non-ASCII text, at a page's edges too.
func TestReadAllRawEqualsDatabaseSQL(t *testing.T) {
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	const n = 2*rawReadMin + 37
	for i := 0; i < n; i += 50 {
		var evs []domain.EventData
		for j := i; j < min(i+50, n); j++ {
			md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: fmt.Sprint("acc:", j%7)}}
			if j%3 == 0 {
				md.SubjectAccountID, md.IP, md.UserAgent = fmt.Sprint("acc:", j%7), "2001:db8::"+fmt.Sprint(j), strings.Repeat("Mozilla/5.0 ", j%40)
			}
			if j%5 == 0 {
				md.ClientID, md.CorrelationID, md.CausationID = "0:", "Zürich 東京 🔐", "a\x00b"
			}
			evs = append(evs, domain.EventData{ID: fmt.Sprint("ev-", j), Type: fmt.Sprint("type.", j%11), SchemaVersion: 1 + j%3,
				Data: []byte(fmt.Sprintf(`{"n":%d,"s":"%s"}`, j, strings.Repeat("é:", j%97))), Metadata: md})
		}
		if _, err := s.Append(ctx, fmt.Sprint("stream-", i), eventstore.NoStream, evs); err != nil {
			t.Fatal(err)
		}
	}
	pages := func(read func(after uint64) ([]domain.Envelope, error)) (all []domain.Envelope) {
		t.Helper()
		for after := uint64(0); ; {
			page, err := read(after)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return all
			}
			all = append(all, page...)
			after = page[len(page)-1].Position
		}
	}
	want := pages(func(after uint64) ([]domain.Envelope, error) {
		rows, err := s.queryPage(ctx, s.reads.all, "ReadAll", 100, after, 100)
		if err != nil {
			return nil, err
		}
		return scanEnvelopes(rows, 100)
	})
	if len(want) != n {
		t.Fatalf("database/sql read %d events, want %d", len(want), n)
	}
	got := pages(func(after uint64) ([]domain.Envelope, error) { return s.readAllRaw(ctx, after, rawReadMin) })
	if len(got) != n {
		t.Fatalf("read %d events, want %d", len(got), n)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d read as\n%+v\nthrough database/sql as\n%+v", i, got[i], want[i])
		}
	}
	// ReadAll itself takes this path for a large page.
	all, err := s.ReadAll(ctx, 0, 10*rawReadMin)
	if err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("ReadAll of a large page: %d events, %v", len(all), err)
	}
	// A cancelled read stops.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.readAllRaw(cctx, 0, rawReadMin); err == nil {
		t.Fatal("a cancelled read succeeded")
	}
}
