package projections

import (
	"context"

	"github.com/vigil-auth/vigil/geoip"
)

// place is where an IP address is, as stored in the sessions and activity rows.
type place struct {
	located                            bool
	city, region, country, countryCode string
	lat, lon                           float64
	asn                                uint
	asOrg                              string
	radius                             int64 // the location's accuracy radius in km (the sign-in history's)
	// boxed is args() made once for a place in a place cache (a rebuild's: hundreds of
	// thousands of rows share a few places), shared and never written.
	boxed []any
}

// locate looks ip up (no lookup without an address or a resolver), through the place cache
// of ctx when it has one (a rebuild's: see withPlaceCache).
func locate(ctx context.Context, r *geoip.Resolver, ip string) place {
	if ip == "" {
		return place{}
	}
	if c, ok := ctx.Value(placeCacheKey{}).(*placeCache); ok && c.r == r {
		if p, ok := c.m[ip]; ok {
			return p
		}
		p := lookupPlace(r, ip)
		p.boxed = p.args()
		if len(c.m) >= placeCacheSize {
			clear(c.m)
		}
		c.m[ip] = p
		return p
	}
	return lookupPlace(r, ip)
}

// placeCache remembers the places of the addresses a rebuild's projection looked up: one
// goroutine's (no lock), for the one resolver whose databases do not change meanwhile.
type placeCache struct {
	r *geoip.Resolver
	m map[string]place
}

type placeCacheKey struct{}

// placeCacheSize bounds a place cache; a full one starts again.
const placeCacheSize = 1 << 16

// withPlaceCache returns ctx with a place cache for r, for one goroutine.
func withPlaceCache(ctx context.Context, r *geoip.Resolver) context.Context {
	return context.WithValue(ctx, placeCacheKey{}, &placeCache{r: r, m: map[string]place{}})
}

// lookupPlace looks ip up in r.
func lookupPlace(r *geoip.Resolver, ip string) place {
	res := r.LookupString(ip)
	p := place{asn: res.ASN, asOrg: res.ASOrg}
	if l := res.Location; l != nil {
		p.located = true
		p.city, p.region, p.country, p.countryCode = l.City, l.Region, l.Country, l.CountryCode
		p.lat, p.lon = l.Latitude, l.Longitude
		p.radius = int64(l.AccuracyRadiusKM)
	}
	return p
}

// placeColumns is the column list of a place, in the order of place.args and scanPlace.
const placeColumns = `located, city, region, country, country_code, latitude, longitude, asn, as_org`

const placeDDL = `located      INTEGER NOT NULL,
		city         TEXT NOT NULL,
		region       TEXT NOT NULL,
		country      TEXT NOT NULL,
		country_code TEXT NOT NULL,
		latitude     REAL NOT NULL,
		longitude    REAL NOT NULL,
		asn          INTEGER NOT NULL,
		as_org       TEXT NOT NULL`

// args returns the place's column values, in the order of placeColumns; the caller copies
// them (a cached place's are shared).
func (p place) args() []any {
	if p.boxed != nil {
		return p.boxed
	}
	return []any{p.located, p.city, p.region, p.country, p.countryCode, p.lat, p.lon, int64(p.asn), p.asOrg}
}

// scannedPlace receives the place columns of a row.
type scannedPlace struct {
	located                            bool
	city, region, country, countryCode string
	lat, lon                           float64
	asn                                int64
	asOrg                              string
}

func (s *scannedPlace) dest() []any {
	return []any{&s.located, &s.city, &s.region, &s.country, &s.countryCode, &s.lat, &s.lon, &s.asn, &s.asOrg}
}

func (s *scannedPlace) location() *geoip.Location {
	if !s.located {
		return nil
	}
	return &geoip.Location{City: s.city, Region: s.region, Country: s.country, CountryCode: s.countryCode,
		Latitude: s.lat, Longitude: s.lon}
}
