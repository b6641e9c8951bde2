// Package geoiptest writes small, real MaxMind DB (mmdb) files for tests.
//
// The files are built with mmdbwriter and use exactly the record layout of
// MaxMind's GeoIP2-City and GeoLite2-ASN databases, so any reader of those
// databases (the geoip package, geoip2-golang) can open them. It is an
// ordinary package so that tests of other packages can use it too.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// CityDatabaseType and ASNDatabaseType are the database_type metadata values
// written by WriteCityDB and WriteASNDB.
const (
	CityDatabaseType = "GeoIP2-City"
	ASNDatabaseType  = "GeoLite2-ASN"
)

// CityEntry is one network of a city database. Network is a CIDR ("81.2.69.0/24",
// "2a02:8010::/32"). Empty strings are left out of the record, as MaxMind
// does; Lat and Lon (decimal degrees) are written only when either is non-zero.
type CityEntry struct {
	Network     string
	City        string
	Region      string
	Country     string
	CountryCode string
	Lat, Lon    float64
}

// ASNEntry is one network of an ASN database: Network is a CIDR, ASN the
// autonomous system number and Org its organisation.
type ASNEntry struct {
	Network string
	ASN     uint
	Org     string
}

// WriteCityDB writes a "GeoIP2-City" mmdb holding entries to path, failing t
// on any error. Each record has city.names.en, subdivisions[0].names.en,
// country.names.en, country.iso_code and location.latitude/longitude. Later
// entries override earlier ones where networks overlap.
//
// The file is written to a temporary name in path's directory and renamed over
// path, so a database already open at path (memory-mapped) is never truncated
// under its reader. Reserved networks (TEST-NET, private ranges) are allowed.
func WriteCityDB(t testing.TB, path string, entries []CityEntry) {
	t.Helper()
	tree := newTree(t, CityDatabaseType)
	for _, e := range entries {
		rec := mmdbtype.Map{}
		if e.City != "" {
			rec["city"] = mmdbtype.Map{"names": names(e.City)}
		}
		if e.Region != "" {
			rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"names": names(e.Region)}}
		}
		if e.Country != "" || e.CountryCode != "" {
			c := mmdbtype.Map{}
			if e.Country != "" {
				c["names"] = names(e.Country)
			}
			if e.CountryCode != "" {
				c["iso_code"] = mmdbtype.String(e.CountryCode)
			}
			rec["country"] = c
		}
		if e.Lat != 0 || e.Lon != 0 {
			rec["location"] = mmdbtype.Map{
				"latitude":  mmdbtype.Float64(e.Lat),
				"longitude": mmdbtype.Float64(e.Lon),
			}
		}
		insert(t, tree, e.Network, rec)
	}
	write(t, tree, path)
}

// WriteASNDB writes a "GeoLite2-ASN" mmdb holding entries to path, failing t
// on any error. Each record has autonomous_system_number and
// autonomous_system_organization. It writes and renames like WriteCityDB.
func WriteASNDB(t testing.TB, path string, entries []ASNEntry) {
	t.Helper()
	tree := newTree(t, ASNDatabaseType)
	for _, e := range entries {
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(e.ASN)}
		if e.Org != "" {
			rec["autonomous_system_organization"] = mmdbtype.String(e.Org)
		}
		insert(t, tree, e.Network, rec)
	}
	write(t, tree, path)
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en)}
}

func newTree(t testing.TB, dbType string) *mmdbwriter.Tree {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "vigil geoiptest " + dbType},
		Languages:               []string{"en"},
		IPVersion:               6,
		RecordSize:              28,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatalf("geoiptest: new %s tree: %v", dbType, err)
	}
	return tree
}

func insert(t testing.TB, tree *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) {
	t.Helper()
	_, network, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatalf("geoiptest: network %q: %v", cidr, err)
	}
	if err := tree.Insert(network, rec); err != nil {
		t.Fatalf("geoiptest: insert %s: %v", cidr, err)
	}
}

func write(t testing.TB, tree *mmdbwriter.Tree, path string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		t.Fatalf("geoiptest: %v", err)
	}
	tmp := f.Name()
	_, err = tree.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("geoiptest: write %s: %v", path, err)
	}
}
