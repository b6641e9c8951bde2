// Package geoiptest writes small, real MaxMind DB (mmdb) files for tests and
// demos (vigil-dev seed --city-db).
//
// The files are built with mmdbwriter and use exactly the record layout of
// MaxMind's GeoIP2-City and GeoLite2-ASN databases, so any reader of those
// databases (the geoip package, geoip2-golang) can open them. It is an
// ordinary package so that tests of other packages can use it too.
package geoiptest

import (
	"fmt"
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
	// AccuracyRadius is location.accuracy_radius in kilometres, written with the
	// coordinates when not 0.
	AccuracyRadius uint16
}

// ASNEntry is one network of an ASN database: Network is a CIDR, ASN the
// autonomous system number and Org its organisation.
type ASNEntry struct {
	Network string
	ASN     uint
	Org     string
}

// WriteCityDB writes a "GeoIP2-City" mmdb holding entries to path, failing t
// on any error (see CityDB).
func WriteCityDB(t testing.TB, path string, entries []CityEntry) {
	t.Helper()
	if err := CityDB(path, entries); err != nil {
		t.Fatal(err)
	}
}

// WriteASNDB writes a "GeoLite2-ASN" mmdb holding entries to path, failing t
// on any error (see ASNDB).
func WriteASNDB(t testing.TB, path string, entries []ASNEntry) {
	t.Helper()
	if err := ASNDB(path, entries); err != nil {
		t.Fatal(err)
	}
}

// CityDB writes a "GeoIP2-City" mmdb holding entries to path. Each record has
// city.names.en, subdivisions[0].names.en, country.names.en, country.iso_code
// and location.latitude/longitude (with location.accuracy_radius when given). Later entries override earlier ones where
// networks overlap.
//
// The file is written to a temporary name in path's directory and renamed over
// path, so a database already open at path (memory-mapped) is never truncated
// under its reader. Reserved networks (TEST-NET, private ranges) are allowed.
func CityDB(path string, entries []CityEntry) error {
	tree, err := newTree(CityDatabaseType)
	if err != nil {
		return err
	}
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
			l := mmdbtype.Map{
				"latitude":  mmdbtype.Float64(e.Lat),
				"longitude": mmdbtype.Float64(e.Lon),
			}
			if e.AccuracyRadius != 0 {
				l["accuracy_radius"] = mmdbtype.Uint16(e.AccuracyRadius)
			}
			rec["location"] = l
		}
		if err := insert(tree, e.Network, rec); err != nil {
			return err
		}
	}
	return write(tree, path)
}

// ASNDB writes a "GeoLite2-ASN" mmdb holding entries to path. Each record has
// autonomous_system_number and autonomous_system_organization. It writes and
// renames like CityDB.
func ASNDB(path string, entries []ASNEntry) error {
	tree, err := newTree(ASNDatabaseType)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(e.ASN)}
		if e.Org != "" {
			rec["autonomous_system_organization"] = mmdbtype.String(e.Org)
		}
		if err := insert(tree, e.Network, rec); err != nil {
			return err
		}
	}
	return write(tree, path)
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en)}
}

func newTree(dbType string) (*mmdbwriter.Tree, error) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "vigil geoiptest " + dbType},
		Languages:               []string{"en"},
		IPVersion:               6,
		RecordSize:              28,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		return nil, fmt.Errorf("geoiptest: new %s tree: %w", dbType, err)
	}
	return tree, nil
}

func insert(tree *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) error {
	_, network, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("geoiptest: network %q: %w", cidr, err)
	}
	if err := tree.Insert(network, rec); err != nil {
		return fmt.Errorf("geoiptest: insert %s: %w", cidr, err)
	}
	return nil
}

func write(tree *mmdbwriter.Tree, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("geoiptest: %w", err)
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
		return fmt.Errorf("geoiptest: write %s: %w", path, err)
	}
	return nil
}
