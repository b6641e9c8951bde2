// Package portaltest holds what the portal's tests and the app's portal tests share: how a
// browser follows the portal's redirects.
package portaltest

import (
	"fmt"
	"net/url"
	"strings"
)

// BrowserTarget resolves loc against base as a browser's URL parser (WHATWG URL) does for
// an http(s) page: every tab and newline is removed, leading and trailing C0 controls and
// spaces are trimmed, and a backslash reads as a slash.
func BrowserTarget(base *url.URL, loc string) (*url.URL, error) {
	loc = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, loc)
	return base.Parse(strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' }))
}

// SameOrigin says why a Location loc is unsafe, or nil: a browser following it must stay
// on base's origin, and loc must be a plain path (one leading "/", printable ASCII without a
// backslash).
func SameOrigin(base *url.URL, loc string) error {
	u, err := BrowserTarget(base, loc)
	if err != nil {
		return fmt.Errorf("Location %q is not a URL: %w", loc, err)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
		return fmt.Errorf("Location %q sends the browser to %s://%s", loc, u.Scheme, u.Host)
	}
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.IndexFunc(loc, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || r == '\\'
	}) >= 0 {
		return fmt.Errorf("Location %q is not a plain path", loc)
	}
	return nil
}
