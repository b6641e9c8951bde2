// Package geoip resolves client IP addresses to a location (city, region,
// country, coordinates) and an autonomous system, for the activity log and the
// sessions list.
//
// It reads MaxMind DB (mmdb) files: a City database (GeoIP2-City,
// GeoLite2-City, DB-IP City Lite, or a Country database, which gives no city)
// and an ASN database (GeoLite2-ASN, DB-IP ASN Lite, GeoIP2-ISP). Both are
// optional: with none configured every lookup answers "no location" and
// nothing ever fails. Files replaced on disk (geoipupdate writes a new file
// and renames it over the old one) are picked up without a restart.
//
// Addresses that no database can locate (private, loopback, link-local,
// unspecified, multicast, documentation and other reserved ranges) are
// labelled and never looked up.
package geoip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReloadInterval is how often the files are checked for replacement
// when Config.ReloadInterval is zero.
const DefaultReloadInterval = time.Minute

// staleAfter: a database built longer ago than this is logged as stale when
// loaded (geoipupdate refreshes them weekly).
const staleAfter = 60 * 24 * time.Hour

// Location is where an address is, in English. It marshals to JSON as the
// activity log's `location` object: {city, region, country, country_code,
// latitude, longitude}. City and Region are empty when the database does not
// know them (always, with a Country database); Latitude and Longitude are
// decimal degrees (WGS 84), both 0 when the database has no coordinates.
type Location struct {
	// City is the English city name, "" when unknown.
	City string `json:"city"`
	// Region is the English name of the first subdivision (state, county,
	// region), "" when unknown.
	Region string `json:"region"`
	// Country is the English country name.
	Country string `json:"country"`
	// CountryCode is the ISO 3166-1 alpha-2 code, e.g. "GB".
	CountryCode string `json:"country_code"`
	// Latitude is in decimal degrees, north positive.
	Latitude float64 `json:"latitude"`
	// Longitude is in decimal degrees, east positive.
	Longitude float64 `json:"longitude"`
	// AccuracyRadiusKM is the database's accuracy radius around the coordinates, in
	// kilometres (MaxMind's location.accuracy_radius), 0 when unknown. It is not part of the
	// activity log's location object; the sign-in risk detector allows for it.
	AccuracyRadiusKM uint16 `json:"-"`
}

// Result is the answer to a lookup. Location is nil exactly when Label is not
// empty: Label then says why (one of the Label* constants). ASN and ASOrg are
// filled whenever the ASN database knows the address, even without a
// location; ASN 0 means unknown.
type Result struct {
	// Location is nil when the address is not located (see Label).
	Location *Location `json:"location"`
	// ASN is the autonomous system number, 0 when unknown.
	ASN uint `json:"asn"`
	// ASOrg is the autonomous system's organisation, "" when unknown.
	ASOrg string `json:"as_org"`
	// Label is "" when Location is set, else one of the Label* constants.
	Label string `json:"label"`
}

// Config configures Open. The zero Config gives a resolver without databases.
type Config struct {
	// CityDB is the path of a City (or Country) mmdb; empty means none.
	CityDB string
	// ASNDB is the path of an ASN mmdb; empty means none.
	ASNDB string
	// Logger receives load, reload and lookup-error messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// ReloadInterval is how often the files' identity (inode, size, mtime) is
	// checked for a replacement; 0 means DefaultReloadInterval, negative
	// disables the background check (Reload still works).
	ReloadInterval time.Duration
	// Now is the clock (for log throttling and the staleness warning); nil
	// means time.Now.
	Now func() time.Time
}

// Resolver answers lookups from the configured databases. All its methods are
// safe for concurrent use. A nil *Resolver behaves as one without databases.
type Resolver struct {
	city, asn *source // nil when not configured
	log       *slog.Logger
	now       func() time.Time

	reloadMu sync.Mutex // serializes Reload, the background check and Close
	closed   bool       // guarded by reloadMu

	stop      chan struct{} // nil when no background goroutine runs
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	lastLookupErr atomic.Int64 // UnixNano of the last logged lookup error
}

// Open opens the configured databases and, when at least one is configured
// and cfg.ReloadInterval is not negative, starts a goroutine that reloads
// them when replaced; Close stops it. A configured file that is missing,
// unreadable, not an mmdb or not of the right kind (a City/Country database
// for CityDB, an ASN database for ASNDB) is an error naming the file.
func Open(cfg Config) (*Resolver, error) {
	r := &Resolver{log: cfg.Logger, now: cfg.Now}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.CityDB != "" {
		s, err := r.openSource(kindCity, cfg.CityDB)
		if err != nil {
			return nil, err
		}
		r.city = s
	}
	if cfg.ASNDB != "" {
		s, err := r.openSource(kindASN, cfg.ASNDB)
		if err != nil {
			if r.city != nil {
				_ = r.city.cur.Load().retire()
			}
			return nil, err
		}
		r.asn = s
	}
	interval := cfg.ReloadInterval
	if interval == 0 {
		interval = DefaultReloadInterval
	}
	if (r.city != nil || r.asn != nil) && interval > 0 {
		r.stop = make(chan struct{})
		r.done = make(chan struct{})
		go r.reloadLoop(interval)
	}
	return r, nil
}

// Lookup locates ip. It never fails: an address that cannot or need not be
// looked up gets a Label and no Location. IPv4-mapped IPv6 addresses and the
// NAT64 prefix 64:ff9b::/96 are reduced to their IPv4 address first, and a
// zone is ignored. Safe for concurrent use, also during reloads and after
// Close (which makes every public address "unknown"). The Location returned
// is the caller's own.
func (r *Resolver) Lookup(ip netip.Addr) Result {
	ip = normalize(ip)
	if l := classify(ip); l != "" {
		return Result{Label: l}
	}
	var res Result
	if r != nil {
		nip := net.IP(ip.AsSlice())
		if h := r.city.acquire(); h != nil {
			res.Location = r.lookupCity(h, nip)
			r.release(h)
		}
		if h := r.asn.acquire(); h != nil {
			res.ASN, res.ASOrg = r.lookupASN(h, nip)
			r.release(h)
		}
	}
	if res.Location == nil {
		res.Label = LabelUnknown
	}
	return res
}

// LookupString is Lookup for a textual address: "81.2.69.142", "2a02::1",
// "fe80::1%eth0", or an address with a port ("81.2.69.142:443",
// "[2a02::1]:443", as in http.Request.RemoteAddr). Anything else gets
// Label "unknown".
func (r *Resolver) LookupString(s string) Result {
	s = strings.TrimSpace(s)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return Result{Label: LabelUnknown}
		}
		ip = ap.Addr()
	}
	return r.Lookup(ip)
}

// Reload checks now whether a configured file was replaced (its inode, size
// or modification time changed) and, if so, opens it and swaps it in; lookups
// already running finish on the old database, which the last of them closes
// (neither side waits for the other). Files must be replaced by renaming a new
// file over the old one, never rewritten in place. A file that is missing or
// bad leaves the loaded database in use and is
// returned as an error (and logged). Without databases it does nothing and
// returns nil; after Close it returns an error.
func (r *Resolver) Reload() error {
	if r == nil {
		return nil
	}
	return r.check(false)
}

// Close stops the background reloads (waiting for a check in progress) and
// releases the databases: they are closed at once, or by the last lookup in
// flight if any. Later lookups answer as without databases. Close is
// idempotent; it returns the closing errors of the first call.
func (r *Resolver) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		if r.stop != nil {
			close(r.stop)
			<-r.done
		}
		r.reloadMu.Lock()
		defer r.reloadMu.Unlock()
		r.closed = true
		for _, s := range []*source{r.city, r.asn} {
			if s == nil {
				continue
			}
			if h := s.cur.Swap(nil); h != nil {
				r.closeErr = errors.Join(r.closeErr, h.retire())
			}
		}
	})
	return r.closeErr
}

func (r *Resolver) reloadLoop(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			_ = r.check(true)
		}
	}
}

// check looks for replaced files. In the background, a replacement that
// already failed is not retried (nor logged again) until the file changes.
func (r *Resolver) check(background bool) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.closed {
		return errors.New("geoip: resolver closed")
	}
	var errs []error
	for _, s := range []*source{r.city, r.asn} {
		if s != nil {
			if err := r.checkSource(s, background); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Resolver) checkSource(s *source, background bool) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		err = fmt.Errorf("geoip: %s database %q: %w", s.kind, s.path, err)
		if !background || err.Error() != s.lastStatErr {
			r.log.Error("geoip: cannot check database file; keeping the loaded one",
				"kind", s.kind, "path", s.path, "err", err)
		}
		s.lastStatErr = err.Error()
		return err
	}
	s.lastStatErr = ""
	if cur := s.cur.Load(); cur != nil && sameFile(cur.fi, fi) {
		return nil
	}
	if background && s.failed != nil && sameFile(s.failed, fi) {
		return nil
	}
	h, err := openHandle(s.kind, s.path, fi)
	if err != nil {
		s.failed = fi
		r.log.Error("geoip: replaced database rejected; keeping the loaded one",
			"kind", s.kind, "path", s.path, "err", err)
		return err
	}
	s.failed = nil
	r.logLoaded("geoip: database reloaded", s, h)
	if old := s.cur.Swap(h); old != nil {
		if err := old.retire(); err != nil {
			r.log.Warn("geoip: closing the replaced database", "path", s.path, "err", err)
		}
	}
	return nil
}

func (r *Resolver) openSource(kind, path string) (*source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: %s database %q: %w", kind, path, err)
	}
	h, err := openHandle(kind, path, fi)
	if err != nil {
		return nil, err
	}
	s := &source{kind: kind, path: path}
	s.cur.Store(h)
	r.logLoaded("geoip: database loaded", s, h)
	return s, nil
}

func (r *Resolver) logLoaded(msg string, s *source, h *handle) {
	built := time.Unix(int64(h.db.Metadata.BuildEpoch), 0).UTC()
	r.log.Info(msg, "kind", s.kind, "path", s.path,
		"type", h.db.Metadata.DatabaseType, "built", built)
	if age := r.now().Sub(built); age > staleAfter {
		r.log.Warn("geoip: database is stale; is geoipupdate running?",
			"kind", s.kind, "path", s.path, "age_days", int(age.Hours()/24))
	}
}

// lookupFailed logs a lookup error at most once a minute: a corrupt database
// must not flood the log.
func (r *Resolver) lookupFailed(kind string, ip net.IP, err error) {
	now := r.now().UnixNano()
	last := r.lastLookupErr.Load()
	if now-last < int64(time.Minute) || !r.lastLookupErr.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn("geoip: lookup failed (further errors suppressed for a minute)",
		"kind", kind, "ip", ip.String(), "err", err)
}

// release drops a lookup's reference to h; the last one, after a reload or
// Close, unmaps the file.
func (r *Resolver) release(h *handle) {
	if err := h.release(); err != nil {
		r.log.Warn("geoip: closing a replaced database", "err", err)
	}
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
