package passkey

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Config configures WebAuthn. The zero value (no RPID) disables passkeys: every
// passkey command of package domain returns command.ErrPasskeysDisabled. ConfigFromPublicURL derives it from
// the public URL.
type Config struct {
	// RPID is the relying party id: the host of the public URL (a domain name, lower case,
	// without scheme or port; "localhost" for development). Passkeys are bound to it:
	// changing it makes every registered passkey unusable.
	RPID string
	// RPDisplayName is the name authenticators show; default "Vigil".
	RPDisplayName string
	// Origins are the exact origins (scheme://host[:port]) the browser may report in
	// clientDataJSON; default ["https://" + RPID]. Each host must be RPID or a subdomain of
	// it; the scheme must be https, or http for localhost.
	Origins []string
	// CeremonyTTL is how long a ceremony may take from its options to its answer, and the
	// timeout the options give the browser; default 5m, at most 10m.
	CeremonyTTL time.Duration
	// Ceremonies keeps the ceremonies in progress; default a new ephemeral.MemoryCeremonyStore
	// (per instance, see ephemeral.CeremonyStore).
	Ceremonies ephemeral.CeremonyStore
}

// ConfigFromPublicURL returns the configuration for a service reached at publicURL
// (Vigil's --public-url): RPID its host, the one origin its scheme://host[:port]. It
// returns an error when that cannot be a relying party (no absolute URL, an IP address as
// host, http other than on localhost): the caller may then run without passkeys.
func ConfigFromPublicURL(publicURL string) (Config, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return Config{}, fmt.Errorf("passkeys: public URL %q is not an absolute URL", publicURL)
	}
	c := Config{RPID: strings.ToLower(u.Hostname()), Origins: []string{u.Scheme + "://" + u.Host}}
	check := c
	check.Ceremonies = ephemeral.NewMemoryCeremonyStoreWithLimit(1) // Fill's default store is not kept
	if err := check.Fill(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Enabled reports whether passkeys are configured.
func (c *Config) Enabled() bool { return c.RPID != "" }

// Fill validates the configuration and fills its defaults; origins are normalised (lower
// case, no default port). A zero configuration stays disabled. command.NewService calls it.
func (c *Config) Fill() error {
	if c.RPID == "" {
		if len(c.Origins) > 0 {
			return errors.New("passkeys: Origins given without RPID")
		}
		return nil
	}
	if err := validateRPID(c.RPID); err != nil {
		return err
	}
	if c.RPDisplayName == "" {
		c.RPDisplayName = "Vigil"
	}
	if n, err := validate.Text("rp_display_name", c.RPDisplayName, 100, true); err != nil || n != c.RPDisplayName {
		return fmt.Errorf("passkeys: RPDisplayName %q must be 1..100 characters of plain text", c.RPDisplayName)
	}
	if len(c.Origins) == 0 {
		c.Origins = []string{"https://" + c.RPID}
	}
	origins := make([]string, 0, len(c.Origins))
	for _, o := range c.Origins {
		n, err := normalizeOrigin(o, c.RPID)
		if err != nil {
			return err
		}
		if !slices.Contains(origins, n) {
			origins = append(origins, n)
		}
	}
	c.Origins = origins
	if c.CeremonyTTL == 0 {
		c.CeremonyTTL = 5 * time.Minute
	}
	if c.CeremonyTTL < 10*time.Second || c.CeremonyTTL > 10*time.Minute {
		return fmt.Errorf("passkeys: CeremonyTTL %s must be between 10s and 10m", c.CeremonyTTL)
	}
	if c.Ceremonies == nil {
		c.Ceremonies = ephemeral.NewMemoryCeremonyStore()
	}
	return nil
}

// validateRPID accepts a lower-case DNS name (not an IP address).
func validateRPID(id string) error {
	bad := fmt.Errorf("passkeys: RPID %q must be a lower-case domain name without scheme or port", id)
	if len(id) > 253 || isIPAddress(id) || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") {
		return bad
	}
	for _, label := range strings.Split(id, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return bad
			}
		}
	}
	return nil
}

func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// normalizeOrigin checks an origin against rpID and returns it as browsers serialise it.
func normalizeOrigin(origin, rpID string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("passkeys: origin %q must be scheme://host[:port]", origin)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", fmt.Errorf("passkeys: origin %q is not on the relying party %q or a subdomain", origin, rpID)
	}
	local := host == "localhost" || strings.HasSuffix(host, ".localhost")
	switch {
	case scheme == "https":
		if port == "443" {
			port = ""
		}
	case scheme == "http" && local:
		if port == "80" {
			port = ""
		}
	default:
		return "", fmt.Errorf("passkeys: origin %q must use https (http only for localhost)", origin)
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// RelyingParty is what the WebAuthn checks need of the (filled) configuration.
func (c *Config) RelyingParty() RelyingParty {
	return RelyingParty{ID: c.RPID, Name: c.RPDisplayName, Origins: c.Origins, Timeout: c.CeremonyTTL}
}
