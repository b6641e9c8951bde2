package geoip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/geoip2-golang"

	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

var (
	london = geoiptest.CityEntry{Network: "81.2.69.0/24", City: "London", Region: "England",
		Country: "United Kingdom", CountryCode: "GB", Lat: 51.5142, Lon: -0.0931, AccuracyRadius: 20}
	manchester = geoiptest.CityEntry{Network: "81.2.69.0/24", City: "Manchester", Region: "England",
		Country: "United Kingdom", CountryCode: "GB", Lat: 53.4809, Lon: -2.2374}
	mountainView = geoiptest.CityEntry{Network: "2001:4860::/32", City: "Mountain View", Region: "California",
		Country: "United States", CountryCode: "US", Lat: 37.386, Lon: -122.0838}
	sweden = geoiptest.CityEntry{Network: "89.160.20.112/28", Country: "Sweden", CountryCode: "SE",
		Lat: 59.3247, Lon: 18.056}
	// Private and documentation networks in the database prove that labelled
	// addresses are not looked up.
	trapPrivate = geoiptest.CityEntry{Network: "10.0.0.0/8", City: "Trap", Country: "Nowhere", CountryCode: "XX"}
	trapDoc     = geoiptest.CityEntry{Network: "203.0.113.0/24", City: "Trap", Country: "Nowhere", CountryCode: "XX"}

	aaisp    = geoiptest.ASNEntry{Network: "81.2.69.0/24", ASN: 20712, Org: "Andrews & Arnold Ltd"}
	google   = geoiptest.ASNEntry{Network: "2001:4860::/32", ASN: 15169, Org: "Google LLC"}
	telstra  = geoiptest.ASNEntry{Network: "1.128.0.0/11", ASN: 1221, Org: "Telstra Pty Ltd"}
	aaispNew = geoiptest.ASNEntry{Network: "81.2.69.0/24", ASN: 64512, Org: "Renamed Ltd"}
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fixture writes the standard city and ASN databases into a temp dir.
func fixture(t testing.TB) (cityPath, asnPath string) {
	t.Helper()
	dir := t.TempDir()
	cityPath = filepath.Join(dir, "GeoLite2-City.mmdb")
	asnPath = filepath.Join(dir, "GeoLite2-ASN.mmdb")
	geoiptest.WriteCityDB(t, cityPath, []geoiptest.CityEntry{london, mountainView, sweden, trapPrivate, trapDoc})
	geoiptest.WriteASNDB(t, asnPath, []geoiptest.ASNEntry{aaisp, google, telstra})
	return cityPath, asnPath
}

func open(t testing.TB, cfg Config) *Resolver {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = -1 // tests call Reload themselves
	}
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func loc(e geoiptest.CityEntry) *Location {
	return &Location{City: e.City, Region: e.Region, Country: e.Country, CountryCode: e.CountryCode,
		Latitude: e.Lat, Longitude: e.Lon, AccuracyRadiusKM: e.AccuracyRadius}
}

func check(t *testing.T, r *Resolver, ip string, want Result) {
	t.Helper()
	got := r.LookupString(ip)
	if (got.Location == nil) != (want.Location == nil) ||
		(got.Location != nil && *got.Location != *want.Location) ||
		got.ASN != want.ASN || got.ASOrg != want.ASOrg || got.Label != want.Label {
		t.Errorf("Lookup(%s) = %s, want %s", ip, show(got), show(want))
	}
}

func show(r Result) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestLookupCityAndASN(t *testing.T) {
	cityPath, asnPath := fixture(t)
	r := open(t, Config{CityDB: cityPath, ASNDB: asnPath})

	ldn := Result{Location: loc(london), ASN: 20712, ASOrg: "Andrews & Arnold Ltd"}
	check(t, r, "81.2.69.142", ldn)
	check(t, r, "::ffff:81.2.69.142", ldn)   // IPv4-mapped
	check(t, r, "64:ff9b::81.2.69.142", ldn) // NAT64
	check(t, r, "81.2.69.142:51234", ldn)    // RemoteAddr form
	check(t, r, " 81.2.69.1 ", ldn)          // surrounding space
	check(t, r, "[2001:4860::8888]:443", Result{Location: loc(mountainView), ASN: 15169, ASOrg: "Google LLC"})
	check(t, r, "2001:4860:4860::8888", Result{Location: loc(mountainView), ASN: 15169, ASOrg: "Google LLC"})
	// Country-level record: no city, no region.
	check(t, r, "89.160.20.113", Result{Location: loc(sweden)})
	// Known to the ASN database only.
	check(t, r, "1.128.0.1", Result{ASN: 1221, ASOrg: "Telstra Pty Ltd", Label: LabelUnknown})
	// In neither database.
	check(t, r, "8.8.8.8", Result{Label: LabelUnknown})
	check(t, r, "2a00:1450::1", Result{Label: LabelUnknown})

	// The netip.Addr entry point agrees.
	if got := r.Lookup(netip.MustParseAddr("81.2.69.142")); got.Location == nil || got.Location.City != "London" {
		t.Errorf("Lookup(netip) = %s", show(got))
	}
}

// The files geoiptest writes are read the same way by geoip2-golang, so their
// layout is MaxMind's.
func TestGeoIPTestLayoutMatchesGeoIP2(t *testing.T) {
	cityPath, asnPath := fixture(t)
	cdb, err := geoip2.Open(cityPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cdb.Close()
	c, err := cdb.City(net.ParseIP("81.2.69.142"))
	if err != nil {
		t.Fatal(err)
	}
	if c.City.Names["en"] != "London" || len(c.Subdivisions) != 1 || c.Subdivisions[0].Names["en"] != "England" ||
		c.Country.Names["en"] != "United Kingdom" || c.Country.IsoCode != "GB" ||
		c.Location.Latitude != 51.5142 || c.Location.Longitude != -0.0931 || c.Location.AccuracyRadius != 20 {
		t.Errorf("geoip2 City = %+v", c)
	}
	adb, err := geoip2.Open(asnPath)
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	a, err := adb.ASN(net.ParseIP("2001:4860::1"))
	if err != nil {
		t.Fatal(err)
	}
	if a.AutonomousSystemNumber != 15169 || a.AutonomousSystemOrganization != "Google LLC" {
		t.Errorf("geoip2 ASN = %+v", a)
	}
}

func TestJSONShape(t *testing.T) {
	cityPath, _ := fixture(t)
	r := open(t, Config{CityDB: cityPath})
	b, err := json.Marshal(r.LookupString("81.2.69.142"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"location":{"city":"London","region":"England","country":"United Kingdom","country_code":"GB",` +
		`"latitude":51.5142,"longitude":-0.0931},"asn":0,"as_org":"","label":""}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	b, _ = json.Marshal(r.LookupString("10.0.0.1"))
	if want := `{"location":null,"asn":0,"as_org":"","label":"private"}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}

func TestLabelsWithoutLookup(t *testing.T) {
	cityPath, asnPath := fixture(t)
	r := open(t, Config{CityDB: cityPath, ASNDB: asnPath})
	for ip, label := range map[string]string{
		"10.1.2.3":          LabelPrivate, // in the database as "Trap": not looked up
		"172.16.5.4":        LabelPrivate,
		"192.168.1.1":       LabelPrivate,
		"100.64.0.1":        LabelPrivate,
		"fd12:3456::1":      LabelPrivate,
		"fc00::1":           LabelPrivate,
		"::ffff:10.0.0.1":   LabelPrivate,
		"127.0.0.1":         LabelLoopback,
		"127.255.0.1":       LabelLoopback,
		"::1":               LabelLoopback,
		"169.254.169.254":   LabelLinkLocal,
		"fe80::1":           LabelLinkLocal,
		"fe80::1%eth0":      LabelLinkLocal,
		"0.0.0.0":           LabelUnspecified,
		"::":                LabelUnspecified,
		"224.0.0.251":       LabelMulticast,
		"239.1.2.3":         LabelMulticast,
		"ff02::1":           LabelMulticast,
		"203.0.113.9":       LabelReserved, // in the database as "Trap"
		"192.0.2.1":         LabelReserved,
		"198.51.100.7":      LabelReserved,
		"198.18.0.1":        LabelReserved,
		"0.1.2.3":           LabelReserved,
		"240.0.0.1":         LabelReserved,
		"255.255.255.255":   LabelReserved,
		"2001:db8::1":       LabelReserved,
		"3fff::1":           LabelReserved,
		"fec0::1":           LabelReserved,
		"100::1":            LabelReserved,
		"::81.2.69.142":     LabelReserved, // deprecated IPv4-compatible
		"":                  LabelUnknown,
		"not an ip":         LabelUnknown,
		"81.2.69.256":       LabelUnknown,
		"81.2.69.142:99999": LabelUnknown,
	} {
		check(t, r, ip, Result{Label: label})
	}
	if got := r.Lookup(netip.Addr{}); got.Label != LabelUnknown || got.Location != nil {
		t.Errorf("Lookup(zero Addr) = %s", show(got))
	}
}

func TestNoDatabase(t *testing.T) {
	r, err := Open(Config{Logger: quiet()})
	if err != nil {
		t.Fatalf("Open without files: %v", err)
	}
	check(t, r, "81.2.69.142", Result{Label: LabelUnknown})
	check(t, r, "192.168.0.1", Result{Label: LabelPrivate})
	if err := r.Reload(); err != nil {
		t.Errorf("Reload without files: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close without files: %v", err)
	}

	var nilResolver *Resolver
	check(t, nilResolver, "81.2.69.142", Result{Label: LabelUnknown})
	if nilResolver.Reload() != nil || nilResolver.Close() != nil {
		t.Error("nil resolver Reload/Close failed")
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	cityPath, asnPath := fixture(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind DB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	for name, tc := range map[string]struct {
		cfg  Config
		path string
	}{
		"missing city":       {Config{CityDB: missing}, missing},
		"missing asn":        {Config{CityDB: cityPath, ASNDB: missing}, missing},
		"garbage city":       {Config{CityDB: garbage}, garbage},
		"garbage asn":        {Config{ASNDB: garbage}, garbage},
		"empty city":         {Config{CityDB: empty}, empty},
		"directory":          {Config{CityDB: dir}, dir},
		"asn db as city db":  {Config{CityDB: asnPath}, asnPath},
		"city db as asn db":  {Config{ASNDB: cityPath}, cityPath},
		"swapped both flags": {Config{CityDB: asnPath, ASNDB: cityPath}, asnPath},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Logger = quiet()
			r, err := Open(tc.cfg)
			if err == nil {
				_ = r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
		})
	}
}

// writeTyped writes a one-network database of any type, for the types
// geoiptest does not write.
func writeTyped(t *testing.T, path, dbType, network string, rec mmdbtype.Map) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR(network)
	if err := tree.Insert(n, rec); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOtherVendorsAndCountryDatabases(t *testing.T) {
	dir := t.TempDir()
	en := func(s string) mmdbtype.Map {
		return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(s), "de": mmdbtype.String("x")}}
	}
	cityRec := mmdbtype.Map{
		"city":         en("Berlin"),
		"subdivisions": mmdbtype.Slice{en("Land Berlin"), en("ignored")},
		"country":      mmdbtype.Map{"iso_code": mmdbtype.String("DE"), "names": mmdbtype.Map{"en": mmdbtype.String("Germany")}},
		"continent":    mmdbtype.Map{"code": mmdbtype.String("EU")},
		"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(52.52), "longitude": mmdbtype.Float64(13.405)},
	}
	countryRec := mmdbtype.Map{"country": cityRec["country"]}
	registeredOnly := mmdbtype.Map{"registered_country": cityRec["country"]}
	asnRec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(3320),
		"autonomous_system_organization": mmdbtype.String("Deutsche Telekom AG")}
	berlin := &Location{City: "Berlin", Region: "Land Berlin", Country: "Germany", CountryCode: "DE", Latitude: 52.52, Longitude: 13.405}
	germany := &Location{Country: "Germany", CountryCode: "DE"}

	for _, tc := range []struct {
		dbType string
		rec    mmdbtype.Map
		want   *Location
	}{
		{"DBIP-City-Lite", cityRec, berlin},
		{"GeoLite2-City", cityRec, berlin},
		{"GeoIP2-City-Europe", cityRec, berlin},
		{"GeoLite2-Country", countryRec, germany},
		{"DBIP-Country-Lite", countryRec, germany},
		{"GeoIP2-Country", registeredOnly, germany},
	} {
		path := filepath.Join(dir, tc.dbType+".mmdb")
		writeTyped(t, path, tc.dbType, "2.160.0.0/12", tc.rec)
		r := open(t, Config{CityDB: path})
		got := r.LookupString("2.161.0.1")
		if got.Location == nil || *got.Location != *tc.want || got.Label != "" {
			t.Errorf("%s: Lookup = %s", tc.dbType, show(got))
		}
	}
	for _, dbType := range []string{"DBIP-ASN-Lite (compat=GeoLite2-ASN)", "GeoIP2-ISP"} {
		path := filepath.Join(dir, dbType+".mmdb")
		writeTyped(t, path, dbType, "2.160.0.0/12", asnRec)
		r := open(t, Config{ASNDB: path})
		check(t, r, "2.161.0.1", Result{ASN: 3320, ASOrg: "Deutsche Telekom AG", Label: LabelUnknown})
	}
	path := filepath.Join(dir, "anon.mmdb")
	writeTyped(t, path, "GeoIP2-Anonymous-IP", "2.160.0.0/12", mmdbtype.Map{"is_anonymous": mmdbtype.Bool(true)})
	if r, err := Open(Config{CityDB: path, Logger: quiet()}); err == nil {
		_ = r.Close()
		t.Error("an Anonymous-IP database was accepted as a city database")
	}
}

// replace writes a new database under a temporary name in the same directory
// and renames it over path, as geoipupdate does.
func replaceCity(t testing.TB, path string, entries ...geoiptest.CityEntry) {
	t.Helper()
	tmp := path + ".new"
	geoiptest.WriteCityDB(t, tmp, entries)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func replaceBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func city(r *Resolver, ip string) string {
	res := r.LookupString(ip)
	if res.Location == nil {
		return "<" + res.Label + ">"
	}
	return res.Location.City
}

func TestReloadAfterReplace(t *testing.T) {
	cityPath, asnPath := fixture(t)
	r := open(t, Config{CityDB: cityPath, ASNDB: asnPath})
	if got := city(r, "81.2.69.142"); got != "London" {
		t.Fatalf("before: %s", got)
	}
	if err := r.Reload(); err != nil { // unchanged files: nothing to do
		t.Fatalf("Reload of unchanged files: %v", err)
	}

	replaceCity(t, cityPath, manchester)
	geoiptest.WriteASNDB(t, asnPath, []geoiptest.ASNEntry{aaispNew})
	// Until the check, the old (still mapped) file answers.
	if got := city(r, "81.2.69.142"); got != "London" {
		t.Errorf("before Reload: %s", got)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	check(t, r, "81.2.69.142", Result{Location: loc(manchester), ASN: 64512, ASOrg: "Renamed Ltd"})
	check(t, r, "2001:4860::1", Result{Label: LabelUnknown}) // gone from both new files
}

func TestBadReplacementKeepsOldDatabase(t *testing.T) {
	cityPath, asnPath := fixture(t)
	var logs testkit.SyncBuffer
	r := open(t, Config{CityDB: cityPath, ASNDB: asnPath, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ldn := Result{Location: loc(london), ASN: 20712, ASOrg: "Andrews & Arnold Ltd"}

	replaceBytes(t, cityPath, []byte("truncated download"))
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), cityPath) {
		t.Errorf("Reload of a garbage file: err = %v, want one naming %s", err, cityPath)
	}
	check(t, r, "81.2.69.142", ldn)
	if !strings.Contains(logs.String(), "keeping the loaded one") {
		t.Errorf("rejection not logged: %s", logs.String())
	}

	// A database of the wrong kind is rejected too.
	geoiptest.WriteASNDB(t, cityPath, []geoiptest.ASNEntry{aaispNew})
	if err := r.Reload(); err == nil {
		t.Error("Reload accepted an ASN database as the city database")
	}
	check(t, r, "81.2.69.142", ldn)

	// A removed file keeps the loaded one too.
	if err := os.Remove(asnPath); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), asnPath) {
		t.Errorf("Reload with the ASN file gone: err = %v", err)
	}
	check(t, r, "81.2.69.142", ldn)

	// Fixed files are picked up.
	replaceCity(t, cityPath, manchester)
	geoiptest.WriteASNDB(t, asnPath, []geoiptest.ASNEntry{aaispNew})
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload after the fix: %v", err)
	}
	check(t, r, "81.2.69.142", Result{Location: loc(manchester), ASN: 64512, ASOrg: "Renamed Ltd"})
}

func TestBackgroundReload(t *testing.T) {
	cityPath, _ := fixture(t)
	var logs testkit.SyncBuffer
	r := open(t, Config{CityDB: cityPath, ReloadInterval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	// A bad file is logged once, not at every check.
	replaceBytes(t, cityPath, []byte("garbage"))
	testwait.Until(t, 5*time.Second, "the bad replacement to be logged", func() (bool, string) {
		return strings.Contains(logs.String(), "replaced database rejected"), "log: " + logs.String()
	})
	time.Sleep(100 * time.Millisecond) // twenty more checks, none of which may log it again
	if n := strings.Count(logs.String(), "replaced database rejected"); n != 1 {
		t.Errorf("bad replacement logged %d times, want 1:\n%s", n, logs.String())
	}
	if got := city(r, "81.2.69.142"); got != "London" {
		t.Errorf("after a bad replacement: %s", got)
	}

	replaceCity(t, cityPath, manchester)
	testwait.Until(t, 5*time.Second, "the background check to pick up the replaced file", func() (bool, string) {
		got := city(r, "81.2.69.142")
		return got == "Manchester", "city " + got + "; log: " + logs.String()
	})
}

func TestConcurrentLookupsDuringReloads(t *testing.T) {
	cityPath, asnPath := fixture(t)
	r := open(t, Config{CityDB: cityPath, ASNDB: asnPath, ReloadInterval: time.Millisecond})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seenLondon, seenManchester atomic.Bool
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res := r.Lookup(netip.AddrFrom4([4]byte{81, 2, 69, byte(i)}))
				if res.Location == nil || (res.Location.City != "London" && res.Location.City != "Manchester") {
					errs <- fmt.Errorf("mid-reload lookup = %s", show(res))
					return
				}
				if res.Location.City == "London" {
					seenLondon.Store(true)
				} else {
					seenManchester.Store(true)
				}
				_ = r.LookupString("2001:4860::1")
			}
		}()
	}
	for i := 0; i < 40; i++ {
		if i%2 == 0 {
			replaceCity(t, cityPath, manchester)
			geoiptest.WriteASNDB(t, asnPath, []geoiptest.ASNEntry{aaispNew})
		} else {
			replaceCity(t, cityPath, london, mountainView)
			geoiptest.WriteASNDB(t, asnPath, []geoiptest.ASNEntry{aaisp, google})
		}
		if err := r.Reload(); err != nil {
			t.Errorf("Reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !seenLondon.Load() || !seenManchester.Load() {
		t.Errorf("lookups did not overlap the reloads: London %v, Manchester %v", seenLondon.Load(), seenManchester.Load())
	}
}

func TestClose(t *testing.T) {
	cityPath, asnPath := fixture(t)
	r, err := Open(Config{CityDB: cityPath, ASNDB: asnPath, Logger: quiet(), ReloadInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				res := r.LookupString("81.2.69.142")
				if res.Location == nil && res.Label != LabelUnknown {
					t.Errorf("lookup around Close = %s", show(res))
					return
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	check(t, r, "81.2.69.142", Result{Label: LabelUnknown})
	check(t, r, "10.0.0.1", Result{Label: LabelPrivate})
	if err := r.Reload(); err == nil {
		t.Error("Reload after Close succeeded")
	}
}

func TestLookupErrorsAreThrottled(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var logs testkit.SyncBuffer
	r := &Resolver{log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		r.lookupFailed(kindCity, net.IPv4(81, 2, 69, 1), errors.New("boom"))
	}
	now = now.Add(2 * time.Minute)
	r.lookupFailed(kindCity, net.IPv4(81, 2, 69, 1), errors.New("boom"))
	if n := strings.Count(logs.String(), "lookup failed"); n != 2 {
		t.Errorf("logged %d times, want 2:\n%s", n, logs.String())
	}
}

func BenchmarkLookup(b *testing.B) {
	cityPath, asnPath := fixture(b)
	r := open(b, Config{CityDB: cityPath, ASNDB: asnPath})
	ips := []netip.Addr{
		netip.MustParseAddr("81.2.69.142"),
		netip.MustParseAddr("2001:4860:4860::8888"),
		netip.MustParseAddr("89.160.20.113"),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if r.Lookup(ips[i%len(ips)]).Location == nil {
			b.Fatal("not located")
		}
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	cityPath, asnPath := fixture(b)
	r := open(b, Config{CityDB: cityPath, ASNDB: asnPath})
	ip := netip.MustParseAddr("81.2.69.142")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r.Lookup(ip).Location == nil {
				b.Error("not located")
				return
			}
		}
	})
}
