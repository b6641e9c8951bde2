package main

import (
	"bytes"
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

// TestSeed seeds 50 accounts and about 5,000 events, then checks the log (size within
// 1%, stream kinds, every event decodes, versions 1..n per stream) and replays it through
// the built-in projections, which must accept every event.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const accounts, events = 50, 5000
	var stderr bytes.Buffer
	cityDB := filepath.Join(dir, "seed-city.mmdb")
	code := run(ctx, []string{"seed", "--data-dir", dir, "--accounts", "50", "--events", "5000", "--seed", "7", "--city-db", cityDB},
		cli.Env{Lookup: noEnv, Stdout: &bytes.Buffer{}, Stderr: &stderr})
	if code != cli.ExitOK {
		t.Fatalf("seed: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "seed: wrote ") {
		t.Errorf("no summary line in %q", stderr.String())
	}

	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all := testkit.ReadLog(t, store)
	if n := len(all); n < events*99/100 || n > events*101/100 {
		t.Fatalf("log holds %d events, want %d ± 1%%", n, events)
	}
	versions := map[string]uint64{}
	types := map[string]int{}
	kinds := map[string]int{}
	for _, ev := range all {
		if _, err := domain.DecodeEvent(ev); err != nil {
			t.Fatalf("event %d (%s on %s): %v", ev.Position, ev.Type, ev.StreamID, err)
		}
		if want := versions[ev.StreamID] + 1; ev.Version != want {
			t.Fatalf("event %d on %s has version %d, want %d", ev.Position, ev.StreamID, ev.Version, want)
		}
		if versions[ev.StreamID] == 0 {
			kind := ev.StreamID[:strings.Index(ev.StreamID, "-")+1]
			if strings.HasPrefix(ev.StreamID, domain.StreamPrefixSystem+"email-") {
				kind = "system-email-"
			}
			kinds[kind]++
		}
		versions[ev.StreamID] = ev.Version
		types[ev.Type]++
	}
	if kinds[domain.StreamPrefixAccount] != accounts || kinds["system-email-"] != accounts {
		t.Errorf("stream kinds %v: want %d account and %d email streams", kinds, accounts, accounts)
	}
	if kinds[domain.StreamPrefixSession] < 100 || kinds[domain.ClientStream("")] == 0 || versions[domain.SigninStream] == 0 {
		t.Errorf("stream kinds %v: want many sessions, clients and system-signin", kinds)
	}
	for _, typ := range []string{domain.EventAccountRegistered, domain.EventEmailReserved, domain.EventLoginSucceeded,
		domain.EventSessionStarted, domain.EventSessionAccessed, domain.EventSessionSignedOut, domain.EventSessionExpired,
		domain.EventLoginFailed, domain.EventPasswordChanged, domain.EventTOTPDeviceAdded, domain.EventTOTPDeviceConfirmed,
		domain.EventTOTPCodeAccepted, domain.EventBackupCodesGenerated, domain.EventProfileUpdated, domain.EventClientRegistered} {
		if types[typ] == 0 {
			t.Errorf("no %s in the seeded log (types %v)", typ, types)
		}
	}
	if types[domain.EventAccountRegistered] != accounts {
		t.Errorf("%d AccountRegistered, want %d", types[domain.EventAccountRegistered], accounts)
	}

	pdb, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), app.ProjectionsFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	geo, err := geoip.Open(geoip.Config{CityDB: cityDB})
	if err != nil {
		t.Fatalf("--city-db wrote no usable database: %v", err)
	}
	defer geo.Close()
	pos, err := projections.Replay(ctx, pdb, store, projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if head, _ := store.Head(ctx); pos != head {
		t.Fatalf("replay stopped at %d, head %d", pos, head)
	}
	var withRows int
	if err := pdb.Read().QueryRowContext(ctx, `SELECT count(DISTINCT account_id) FROM activity WHERE account_id <> ''`).Scan(&withRows); err != nil {
		t.Fatal(err)
	}
	if withRows < accounts*9/10 {
		t.Errorf("activity rows for %d accounts, want at least %d", withRows, accounts*9/10)
	}
	rows, err := pdb.Read().QueryContext(ctx, `SELECT DISTINCT ip FROM activity WHERE ip <> ''`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	countries := map[string]bool{}
	for rows.Next() {
		var ip string
		if err := rows.Scan(&ip); err != nil {
			t.Fatal(err)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			t.Fatalf("activity ip %q: %v", ip, err)
		}
		for _, c := range seedCountries {
			if c.prefix.Contains(a) {
				countries[c.code] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(countries) < 6 {
		t.Errorf("activity IPs from %d countries (%v), want at least 6", len(countries), countries)
	}
	// The --city-db database locates them: the activity log has those countries.
	located := map[string]bool{}
	crows, err := pdb.Read().QueryContext(ctx, `SELECT DISTINCT country_code FROM activity WHERE country_code <> ''`)
	if err != nil {
		t.Fatal(err)
	}
	defer crows.Close()
	for crows.Next() {
		var cc string
		if err := crows.Scan(&cc); err != nil {
			t.Fatal(err)
		}
		located[cc] = true
	}
	if !maps.Equal(located, countries) {
		t.Errorf("located countries %v, want %v", located, countries)
	}
}

// TestSeedDeterministic: the same seed and --until give the same streams and events.
func TestSeedDeterministic(t *testing.T) {
	until := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := planSeed(seedConfig{Accounts: 20, Events: 1000, Seed: 3, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	b, err := planSeed(seedConfig{Accounts: 20, Events: 1000, Seed: 3, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.appends) != len(b.appends) {
		t.Fatalf("%d vs %d appends", len(a.appends), len(b.appends))
	}
	for i := range a.appends {
		x, y := a.appends[i], b.appends[i]
		if x.stream != y.stream || len(x.events) != len(y.events) || x.events[0].id != y.events[0].id {
			t.Fatalf("append %d differs: %s vs %s", i, x.stream, y.stream)
		}
	}
}

// TestSeedUsage: bad counts are one line and exit 2.
func TestSeedUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--accounts", "0", "--events", "10"},
		{"--accounts", "10", "--events", "-1"},
		{"--accounts", "11", "--events", "10"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"seed", "--data-dir", t.TempDir()}, args...),
			cli.Env{Lookup: noEnv, Stdout: &bytes.Buffer{}, Stderr: &stderr})
		if code != cli.ExitUsage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, stderr.String())
		}
	}
}
