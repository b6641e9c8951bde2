package web

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/projections"
)

// Paging, filters and item shapes of the read side's lists (API.md "Conventions": `limit`
// and `cursor`, `{"items":[...],"next_cursor":"..."}` without next_cursor on the last page).

// Page sizes (API.md): the default and the most a page holds.
const (
	DefaultPageLimit = projections.DefaultLimit
	MaxPageLimit     = projections.MaxLimit
)

// listJSON is a page of a list; NextCursor is absent on the last page.
type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func Page[T any](items []T, next string) listJSON[T] {
	if items == nil {
		items = []T{}
	}
	return listJSON[T]{Items: items, NextCursor: next}
}

// listSchema is the schema of a page of items.
func ListSchema(items Schema) Schema {
	return Object(map[string]Schema{
		"items":       ArrayOf(items),
		"next_cursor": {"type": "string", "description": "Pass as cursor for the next page; absent on the last page."},
	}, "items")
}

// maxCursor bounds the cursors accepted (Vigil's are a few dozen characters).
const MaxCursor = 512

// pageParams returns the request's limit (API.md: absent = DefaultPageLimit, above
// MaxPageLimit = MaxPageLimit; zero, negative or not a number is invalid) and cursor.
func PageParams(c *gin.Context) (limit int, cursor string, err error) {
	limit = DefaultPageLimit
	if raw, ok := c.GetQuery("limit"); ok {
		n, perr := strconv.ParseInt(raw, 10, 64)
		switch {
		case perr == nil && n > 0:
			limit = int(min(n, MaxPageLimit))
		case errors.Is(perr, strconv.ErrRange) && raw != "" && strings.Trim(raw, "0123456789") == "":
			limit = MaxPageLimit // a positive number too large for int64
		default:
			return 0, "", Public(ErrInvalidRequest, "limit must be a positive integer (at most 500 are answered).", perr)
		}
	}
	cursor = c.Query("cursor")
	if len(cursor) > MaxCursor {
		return 0, "", projections.ErrBadCursor
	}
	return limit, cursor, nil
}

// timeParam parses the optional RFC 3339 query parameter name (zero when absent or empty).
func TimeParam(c *gin.Context, name string) (time.Time, error) {
	raw := c.Query(name)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, Public(ErrInvalidRequest, name+" must be an RFC 3339 time, e.g. 2026-03-02T09:00:00Z.", err)
	}
	return t.UTC(), nil
}

// contractEventTypes are the event type names API.md lists ("Event types"): some belong to
// features still to come, so the domain does not know them yet, but filtering on them is
// not an error.
var contractEventTypes = []string{
	"AccountRegistered", "EmailChanged", "NameChanged", "ProfileUpdated", "PasswordChanged",
	"TOTPDeviceAdded", "TOTPDeviceConfirmed", "TOTPDeviceRemoved", "BackupCodesGenerated",
	"BackupCodeUsed", "PasskeyRegistered", "PasskeyRenamed", "PasskeyRemoved",
	"PasskeyCloneSuspected", "TwoFactorDisabled", "RoleGranted", "RoleRevoked",
	"LoginSucceeded", "LoginFailed", "ReauthSucceeded",
	"SessionStarted", "SessionAccessed", "SessionSignedOut", "SessionExpired",
	"OrgCreated", "MemberAdded", "MemberRemoved", "MemberRoleChanged",
	"TwoFactorRequirementChanged", "ManagedOrgAdded",
	"DelegationGranted", "DelegationRevoked", "DelegationExpired",
	"ClientRegistered", "ServiceTokenCreated", "ServiceTokenRevoked",
}

// knownEventTypes is every event type name a `type` filter accepts: the domain's, the
// activity log's and API.md's.
var KnownEventTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, list := range [][]string{domain.Catalog().Types(), projections.ActivityTypes(), contractEventTypes} {
		for _, t := range list {
			m[t] = true
		}
	}
	return m
}()

// maxTypes bounds the names of one type filter.
const MaxTypes = 64

// typesParam parses the comma-separated event type names of the query parameter `type`
// (empty elements are skipped, duplicates dropped); an unknown name is invalid.
func TypesParam(c *gin.Context) ([]string, error) {
	raw := c.Query("type")
	if raw == "" {
		return nil, nil
	}
	var out []string
	for _, t := range strings.Split(raw, ",") {
		t = strings.TrimSpace(t)
		if t == "" || slices.Contains(out, t) {
			continue
		}
		if !KnownEventTypes[t] {
			if len(t) > 64 || !utf8.ValidString(t) {
				t = "(a name)"
			}
			return nil, Public(ErrInvalidRequest, "type: "+strconv.Quote(t)+" is not an event type (API.md \"Event types\"; names are case-sensitive).", nil)
		}
		out = append(out, t)
		if len(out) > MaxTypes {
			return nil, Public(ErrInvalidRequest, "type: at most 64 event types.", nil)
		}
	}
	return out, nil
}

// ActivityFilter reads the filters the activity lists share, type, from and to, into a
// filter of the page limit and cursor (List has parsed them).
func ActivityFilter(c *gin.Context, limit int, cursor string) (projections.ActivityFilter, error) {
	f := projections.ActivityFilter{Limit: limit, Cursor: cursor}
	var err error
	if f.Types, err = TypesParam(c); err != nil {
		return f, err
	}
	if f.From, err = TimeParam(c, "from"); err != nil {
		return f, err
	}
	if f.To, err = TimeParam(c, "to"); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		return f, Public(ErrInvalidRequest, "from must not be after to.", nil)
	}
	return f, nil
}

// ipParam parses the optional query parameter name as an IP address, in the form the log
// records (IPv4-mapped addresses as IPv4, no zone).
func IpParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		return "", Public(ErrInvalidRequest, name+" must be an IPv4 or IPv6 address.", err)
	}
	return ip.Unmap().WithZone("").String(), nil
}

// countryParam parses the optional ISO 3166-1 alpha-2 code of name (any case).
func CountryParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	if len(raw) != 2 || strings.Trim(strings.ToUpper(raw), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return "", Public(ErrInvalidRequest, name+" must be an ISO 3166-1 alpha-2 country code, e.g. GB.", nil)
	}
	return strings.ToUpper(raw), nil
}

// idParam parses an optional query parameter that names an id (an account): printable, at
// most maxPathID bytes.
func IdParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	if len(raw) > MaxPathID || !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool {
		return r < 0x21 || r == 0x7f
	}) {
		return "", Public(ErrInvalidRequest, name+" is not an id.", nil)
	}
	return raw, nil
}

// optString is a string that is null when empty.
func OptString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
