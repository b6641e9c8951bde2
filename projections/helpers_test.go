package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

// User agents of the tests.
const (
	uaChromeMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	uaSafariIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaFirefoxWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
	uaCurl       = "curl/8.5.0"
)

// Addresses of the test GeoIP databases.
const (
	ipLondon   = "81.2.69.142"          // London, GB, AS20712
	ipGoogle   = "2001:4860:4860::8888" // Mountain View, US, AS15169
	ipSweden   = "89.160.20.115"        // Sweden (no city), no ASN
	ipTelstra  = "1.128.0.1"            // ASN only: no location
	ipPrivate  = "10.1.2.3"             // never looked up
	londonCity = "London"
)

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestClock is the clock of the store and the service: it advances by a millisecond on
// every reading, so RecordedAt times are distinct and ordered.
func newTestClock() *testkit.Clock { return testkit.NewTickingClock(testStart, time.Millisecond) }

// writeGeoDBs writes the test city and ASN databases into dir and opens a resolver on them.
func writeGeoDBs(t testing.TB, dir string) *geoip.Resolver {
	t.Helper()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteCityDB(t, city, []geoiptest.CityEntry{
		{Network: "81.2.69.0/24", City: londonCity, Region: "England", Country: "United Kingdom", CountryCode: "GB", Lat: 51.5142, Lon: -0.0931, AccuracyRadius: 20},
		{Network: "2001:4860::/32", City: "Mountain View", Region: "California", Country: "United States", CountryCode: "US", Lat: 37.386, Lon: -122.0838, AccuracyRadius: 1000},
		{Network: "89.160.20.112/28", Country: "Sweden", CountryCode: "SE", Lat: 59.3247, Lon: 18.056},
		{Network: "10.0.0.0/8", City: "Trap", Country: "Nowhere", CountryCode: "XX"},
	})
	geoiptest.WriteASNDB(t, asn, []geoiptest.ASNEntry{
		{Network: "81.2.69.0/24", ASN: 20712, Org: "Andrews & Arnold Ltd"},
		{Network: "2001:4860::/32", ASN: 15169, Org: "Google LLC"},
		{Network: "1.128.0.0/11", ASN: 1221, Org: "Telstra Pty Ltd"},
	})
	r, err := geoip.Open(geoip.Config{CityDB: city, ASNDB: asn, Logger: quiet, ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// startGeo starts, on a fresh env, the projection made with the test GeoIP databases.
func startGeo(t *testing.T, with func(*geoip.Resolver) projections.Projection) (*env, *runner.Runner) {
	t.Helper()
	e := newEnv(t)
	r, _ := e.start(with(writeGeoDBs(t, t.TempDir())))
	return e, r
}

// newClockEnv is newEnv with the store stamping RecordedAt from clock.
func newClockEnv(t *testing.T, clock *testkit.Clock) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quiet, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, dir: dir}
	e.openDB()
	return e
}

// newService builds a command.Service on the env's store with the clock and cheap argon2.
func newService(t *testing.T, e *env, clock *testkit.Clock) *command.Service {
	t.Helper()
	svc, err := command.NewService(command.Config{Store: e.store, Keyring: testkit.Keyring(t, "k"), Now: clock.Now,
		Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// emit appends domain events to stream (any version) with md and returns the last position.
func (e *env) emit(stream string, md domain.Metadata, evs ...domain.Event) uint64 {
	e.t.Helper()
	data := make([]domain.EventData, len(evs))
	for i, ev := range evs {
		v, ok := domain.Catalog().CurrentVersion(domain.EventTypeOf(ev))
		if !ok {
			e.t.Fatalf("unknown event type %s", domain.EventTypeOf(ev))
		}
		d, err := domain.NewEventData(domain.EventTypeOf(ev), v, ev, md)
		if err != nil {
			e.t.Fatal(err)
		}
		data[i] = d
	}
	return e.appendData(stream, data)
}

// rebuiltDump rebuilds p alone from the env's log in batches of batch events (0: the
// default) and returns the rows of q in the rebuilt file (dump).
func (e *env) rebuiltDump(p projections.Projection, batch int, q string) []string {
	e.t.Helper()
	res, err := projections.Rebuild(e.t.Context(), projections.RebuildConfig{Dir: e.t.TempDir(), Log: e.store,
		Projections: []projections.Projection{p}, BatchSize: batch, Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	rebuilt, err := projections.Open(projections.Config{Path: res.Path, Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	defer rebuilt.Close()
	return dump(e.t, rebuilt, q)
}

// appendData appends data to stream (any version) and returns the last position.
func (e *env) appendData(stream string, data []domain.EventData) uint64 {
	e.t.Helper()
	res, err := e.store.Append(context.Background(), stream, eventstore.Any, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.LastPosition
}

// pendingAppend is one append of emitAll.
type pendingAppend struct {
	stream string
	md     domain.Metadata
	evs    []domain.Event
}

// emitAll queues every append at once and waits for all of them: the store's writer folds
// concurrent appends into shared transactions (group commit), so a large log is built in a
// few commits rather than one per stream. It returns the highest position written.
func (e *env) emitAll(appends []pendingAppend) uint64 {
	e.t.Helper()
	type result struct {
		pos uint64
		err error
	}
	results := make(chan result, len(appends))
	for _, a := range appends {
		data := make([]domain.EventData, len(a.evs))
		for i, ev := range a.evs {
			v, ok := domain.Catalog().CurrentVersion(domain.EventTypeOf(ev))
			if !ok {
				e.t.Fatalf("unknown event type %s", domain.EventTypeOf(ev))
			}
			d, err := domain.NewEventData(domain.EventTypeOf(ev), v, ev, a.md)
			if err != nil {
				e.t.Fatal(err)
			}
			data[i] = d
		}
		go func(stream string) {
			res, err := e.store.Append(context.Background(), stream, eventstore.Any, data)
			if err != nil {
				err = fmt.Errorf("append to %s: %w", stream, err)
			}
			results <- result{res.LastPosition, err}
		}(a.stream)
	}
	var last uint64
	var errs []error
	for range appends {
		r := <-results
		errs = append(errs, r.err)
		last = max(last, r.pos)
	}
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	return last
}

// totpCode is the current code of a base32 secret at now.
func totpCode(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, now, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func self(id string) domain.Actor { return domain.Actor{Type: domain.ActorAccount, ID: id} }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// equalJSON compares two values by their JSON.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return mustJSON(t, a) == mustJSON(t, b)
}
