package geoip

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang"
)

const (
	kindCity = "city"
	kindASN  = "asn"
)

// source is one configured database file and the reader currently serving it.
type source struct {
	kind string
	path string
	cur  atomic.Pointer[handle] // nil only after Close

	// Guarded by Resolver.reloadMu.
	failed      os.FileInfo // the last replacement rejected, not retried until it changes
	lastStatErr string
}

// handle is one opened (memory-mapped) database file, reference counted:
// the source holds one reference while h is current, and every lookup holds
// one while it reads. Whoever drops the last reference unmaps the file, so no
// lookup ever reads a closed database and neither lookups nor reloads wait
// for each other.
type handle struct {
	refs     atomic.Int64 // 0 once closed; never incremented from 0
	db       *maxminddb.Reader
	fi       os.FileInfo // the file's identity when it was opened
	ipv4Only bool
}

func newHandle(db *maxminddb.Reader, fi os.FileInfo) *handle {
	h := &handle{db: db, fi: fi, ipv4Only: db.Metadata.IPVersion == 4}
	h.refs.Store(1)
	return h
}

// acquire returns the current handle with a reference taken, or nil if s is
// nil or closed. The caller must call release.
func (s *source) acquire() *handle {
	if s == nil {
		return nil
	}
	for {
		h := s.cur.Load()
		if h == nil {
			return nil
		}
		n := h.refs.Load()
		if n == 0 {
			// Retired and closed between Load and here; s.cur has already
			// moved on (it is swapped before the last reference is dropped).
			continue
		}
		if h.refs.CompareAndSwap(n, n+1) {
			return h
		}
	}
}

// release drops a reference and closes the database if it was the last.
func (h *handle) release() error {
	if h.refs.Add(-1) == 0 {
		return h.db.Close()
	}
	return nil
}

// retire drops the source's reference; it must be called once, after h was
// swapped out of its source. The database is closed now if no lookup is
// using it, else by the last lookup to finish.
func (h *handle) retire() error { return h.release() }

// cityTypes and asnTypes are the database types geoip2-golang accepts for
// City and ASN lookups; a type not listed is accepted too when its name says
// what it is (see acceptable).
var (
	cityTypes = setOf(
		"DBIP-City-Lite", "DBIP-Country-Lite", "DBIP-Country",
		"DBIP-Location (compat=City)", "DBIP-ISP (compat=Enterprise)",
		"DBIP-Location-ISP (compat=Enterprise)",
		"GeoLite2-City", "GeoLite2-Country",
		"GeoIP2-City", "GeoIP2-Country", "GeoIP2-Precision-City",
		"GeoIP2-City-Africa", "GeoIP2-City-Asia-Pacific", "GeoIP2-City-Europe",
		"GeoIP2-City-North-America", "GeoIP2-City-South-America",
		"GeoIP-City-Redacted-US", "GeoIP2-Enterprise", "GeoIP-Enterprise-Redacted-US",
	)
	asnTypes = setOf(
		"GeoLite2-ASN", "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
		"GeoIP2-ISP", "GeoIP2-Precision-ISP",
	)
)

func setOf(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func acceptable(kind, dbType string) bool {
	switch kind {
	case kindCity:
		return cityTypes[dbType] ||
			(!strings.Contains(dbType, "ASN") &&
				(strings.Contains(dbType, "City") || strings.Contains(dbType, "Country") ||
					strings.Contains(dbType, "Enterprise")))
	case kindASN:
		return asnTypes[dbType] || strings.Contains(dbType, "ASN")
	}
	return false
}

// openHandle opens path, whose identity fi was taken before opening (so a
// replacement racing with the open is seen again at the next check).
func openHandle(kind, path string, fi os.FileInfo) (*handle, error) {
	if fi.IsDir() {
		return nil, fmt.Errorf("geoip: %s database %q: is a directory", kind, path)
	}
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: %s database %q: %w", kind, path, err)
	}
	fail := func(format string, args ...any) (*handle, error) {
		_ = db.Close()
		return nil, fmt.Errorf("geoip: %s database %q: %s", kind, path, fmt.Sprintf(format, args...))
	}
	if t := db.Metadata.DatabaseType; !acceptable(kind, t) {
		want := "a City or Country database (GeoIP2, GeoLite2, DB-IP)"
		if kind == kindASN {
			want = "an ASN database (GeoLite2-ASN, DB-IP ASN Lite)"
		}
		return fail("database type %q is not %s", t, want)
	}
	// Decode one record to catch a data section that is not what its type says.
	probe := net.IPv4(81, 2, 69, 142).To4()
	if off, err := db.LookupOffset(probe); err != nil {
		return fail("probe lookup: %v", err)
	} else if off != maxminddb.NotFound {
		var err error
		if kind == kindCity {
			err = db.Decode(off, new(cityRecord))
		} else {
			err = db.Decode(off, new(asnRecord))
		}
		if err != nil {
			return fail("probe record: %v", err)
		}
	}
	return newHandle(db, fi), nil
}

// names decodes only the English name of a MaxMind "names" map.
type names struct {
	EN string `maxminddb:"en"`
}

type countryRecord struct {
	Names   names  `maxminddb:"names"`
	IsoCode string `maxminddb:"iso_code"`
}

// cityRecord is the part of a GeoIP2-City record that Location needs (same
// keys as geoip2-golang's City model, English names only: decoding is cheaper).
type cityRecord struct {
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Subdivisions []struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	Country           countryRecord `maxminddb:"country"`
	RegisteredCountry countryRecord `maxminddb:"registered_country"`
	Location          struct {
		Latitude       float64 `maxminddb:"latitude"`
		Longitude      float64 `maxminddb:"longitude"`
		AccuracyRadius uint16  `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
}

type asnRecord struct {
	Number uint   `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// offset finds ip's record; ok is false when the database has none.
func (r *Resolver) offset(kind string, h *handle, ip net.IP) (uintptr, bool) {
	if h.ipv4Only && ip.To4() == nil {
		return 0, false
	}
	off, err := h.db.LookupOffset(ip)
	if err != nil {
		r.lookupFailed(kind, ip, err)
		return 0, false
	}
	return off, off != maxminddb.NotFound
}

func (r *Resolver) lookupCity(h *handle, ip net.IP) *Location {
	off, ok := r.offset(kindCity, h, ip)
	if !ok {
		return nil
	}
	var rec cityRecord
	if err := h.db.Decode(off, &rec); err != nil {
		r.lookupFailed(kindCity, ip, err)
		return nil
	}
	country := rec.Country
	if country.IsoCode == "" && country.Names.EN == "" {
		// Satellite, anycast and some other networks only have the country
		// the network is registered in.
		country = rec.RegisteredCountry
	}
	loc := Location{
		City:        rec.City.Names.EN,
		Country:     country.Names.EN,
		CountryCode: country.IsoCode,
		Latitude:    rec.Location.Latitude,
		Longitude:   rec.Location.Longitude,
	}
	if loc.Latitude != 0 || loc.Longitude != 0 {
		loc.AccuracyRadiusKM = rec.Location.AccuracyRadius
	}
	if len(rec.Subdivisions) > 0 {
		loc.Region = rec.Subdivisions[0].Names.EN
	}
	if loc == (Location{}) {
		return nil // a record that locates nothing (e.g. continent only)
	}
	return &loc
}

func (r *Resolver) lookupASN(h *handle, ip net.IP) (uint, string) {
	off, ok := r.offset(kindASN, h, ip)
	if !ok {
		return 0, ""
	}
	var rec asnRecord
	if err := h.db.Decode(off, &rec); err != nil {
		r.lookupFailed(kindASN, ip, err)
		return 0, ""
	}
	return rec.Number, rec.Org
}
