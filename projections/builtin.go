package projections

import "github.com/vigil-auth/vigil/geoip"

// BuiltinConfig is what the built-in projections need.
type BuiltinConfig struct {
	// GeoIP locates the addresses in the sessions and activity read models; nil means no
	// location (never an error).
	GeoIP *geoip.Resolver
}

// Builtin returns the projections the service runs, in a fresh slice, without GeoIP: it is
// BuiltinWith(BuiltinConfig{}).
func Builtin() []Projection {
	return BuiltinWith(BuiltinConfig{})
}

// BuiltinWith returns the projections the service runs, in a fresh slice: the stream
// catalogue, the active sessions, the activity log, the security state and the
// organisation members, and the sign-in history of the risk detector.
func BuiltinWith(cfg BuiltinConfig) []Projection {
	return []Projection{
		Streams{},
		Sessions{GeoIP: cfg.GeoIP},
		Activity{GeoIP: cfg.GeoIP},
		Security{},
		Orgs{},
		SignIns{GeoIP: cfg.GeoIP},
	}
}
