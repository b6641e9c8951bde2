package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

// TestGeoIPDatabases checks the wiring of --geoip-city-db and --geoip-asn-db: none is no
// error; a file that cannot be used stops New with one line naming its flag, before anything
// else is opened; usable files start.
func TestGeoIPDatabases(t *testing.T) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteCityDB(t, city, []geoiptest.CityEntry{{Network: "81.2.69.160/27", City: "London", Country: "United Kingdom", CountryCode: "GB"}})
	geoiptest.WriteASNDB(t, asn, []geoiptest.ASNEntry{{Network: "81.2.69.0/24", ASN: 20712, Org: "Andrews & Arnold Ltd"}})
	junk := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(junk, []byte("not a maxmind database, not at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")

	for _, tc := range []struct {
		name      string
		city, asn string
		want      string // "" = starts
	}{
		{"none", "", "", ""},
		{"both", city, asn, ""},
		{"city only", city, "", ""},
		{"asn only", "", asn, ""},
		{"junk city", junk, asn, "--geoip-city-db"},
		{"missing city", missing, "", "--geoip-city-db"},
		{"junk asn", city, junk, "--geoip-asn-db"},
		{"missing asn", "", missing, "--geoip-asn-db"},
		{"asn database as city", asn, "", "--geoip-city-db"},
		{"city database as asn", city, city, "--geoip-asn-db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			ln := listen(t)
			a, err := New(context.Background(), Config{Logger: slog.New(slog.DiscardHandler), Listener: ln, DataDir: data,
				GeoIPCityDB: tc.city, GeoIPASNDB: tc.asn})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if (tc.city != "" || tc.asn != "") != (a.geo != nil) {
					t.Errorf("resolver %v for city %q asn %q", a.geo, tc.city, tc.asn)
				}
				if err := a.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				a.Close()
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), tc.want+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q does not name %s on one line", err, tc.want)
			}
			if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Error("the listener is still open")
			}
			if _, err := os.Stat(filepath.Join(data, ProjectionsFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("read models were opened: %v", err)
			}
		})
	}
}
