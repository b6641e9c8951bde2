package geoip

import "net/netip"

// Labels of Result.Label: why an address has no location. A located address
// has the empty label.
const (
	// LabelPrivate: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared
	// address space (100.64/10) and IPv6 unique local addresses (fc00::/7).
	LabelPrivate = "private"
	// LabelLoopback: 127/8 and ::1.
	LabelLoopback = "loopback"
	// LabelLinkLocal: 169.254/16 and fe80::/10.
	LabelLinkLocal = "link_local"
	// LabelUnspecified: 0.0.0.0 and ::.
	LabelUnspecified = "unspecified"
	// LabelMulticast: 224/4 and ff00::/8.
	LabelMulticast = "multicast"
	// LabelReserved: documentation, benchmarking, "this network", future-use
	// and other special-purpose ranges that no real client comes from, and
	// IPv6 outside the global unicast space 2000::/3.
	LabelReserved = "reserved"
	// LabelUnknown: an invalid address, or a public one that no configured
	// database locates (including when no city database is configured).
	LabelUnknown = "unknown"
)

var (
	v4Private = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 carrier-grade NAT
	}
	v4Reserved = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("240.0.0.0/4"),     // future use, broadcast
	}
	v6GlobalUnicast = netip.MustParsePrefix("2000::/3")
	v6NAT64         = netip.MustParsePrefix("64:ff9b::/96")
	v6Reserved      = []netip.Prefix{
		netip.MustParsePrefix("2001:db8::/32"), // documentation
		netip.MustParsePrefix("3fff::/20"),     // documentation (RFC 9637)
		netip.MustParsePrefix("2001:2::/48"),   // benchmarking
		netip.MustParsePrefix("2001:10::/28"),  // ORCHID
		netip.MustParsePrefix("2001:20::/28"),  // ORCHIDv2
	}
)

// normalize strips a zone, unmaps IPv4-mapped IPv6 (::ffff:a.b.c.d) and
// translates the NAT64 well-known prefix (64:ff9b::a.b.c.d) to the IPv4
// address it embeds.
func normalize(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("").Unmap()
	if ip.Is6() && v6NAT64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return ip
}

// classify returns the label of a normalized address that must not be looked
// up, or "" for an address worth looking up.
func classify(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return LabelUnknown
	case ip.IsUnspecified():
		return LabelUnspecified
	case ip.IsLoopback():
		return LabelLoopback
	case ip.IsMulticast():
		return LabelMulticast
	case ip.IsLinkLocalUnicast():
		return LabelLinkLocal
	case ip.IsPrivate():
		return LabelPrivate
	}
	if ip.Is4() {
		if containsAny(v4Private, ip) {
			return LabelPrivate
		}
		if containsAny(v4Reserved, ip) {
			return LabelReserved
		}
		return ""
	}
	if !v6GlobalUnicast.Contains(ip) || containsAny(v6Reserved, ip) {
		return LabelReserved
	}
	return ""
}

func containsAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
