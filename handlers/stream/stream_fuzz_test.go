package stream

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/handlers/web"
)

// FuzzListQuery: the query parameters of the lists (limit, cursor, type, from, to) and of
// the event routes (after, types, account, format) are either read within their bounds or
// refused with a 400, never anything else.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10&cursor=YTo3", "limit=0", "limit=-1", "limit=abc", "limit=99999999999999999999999", "limit=+5", "limit=1e3",
		"limit=%00", "cursor=" + strings.Repeat("x", 600), "type=LoginFailed,LoginSucceeded", "type=,,", "type=Nope",
		"type=" + strings.Repeat("LoginFailed,", 70), "from=2026-03-02T09:00:00Z&to=2026-03-03T00:00:00.5+02:00", "from=yesterday",
		"after=5&types=LoginFailed&account=acc_1-x&format=ocsf", "after=-1", "after=18446744073709551616", "types=",
		"types=" + strings.Repeat("a,", 70), "account=", "account=a%2Fb", "format=xml", "types=%ff", "type=%ff%fe",
		"limit=5&limit=6", "a=%zz&limit=2", "from=0000-01-01T00:00:00Z", "from=9999-12-31T23:59:59.999999999-23:59",
	} {
		f.Add(s)
	}
	gin.SetMode(gin.TestMode)
	f.Fuzz(func(t *testing.T, query string) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/x", RawQuery: query}, Header: http.Header{}}
		refused := func(what string, err error) bool {
			if err == nil {
				return false
			}
			if pr, _ := web.ProblemFor(err); pr.Status != http.StatusBadRequest || !utf8.ValidString(pr.Detail) {
				t.Fatalf("%s(%q): %v answers %d %q", what, query, err, pr.Status, pr.Detail)
			}
			return true
		}
		if limit, cursor, err := web.PageParams(c); !refused("pageParams", err) && (limit < 1 || limit > web.MaxPageLimit || len(cursor) > web.MaxCursor) {
			t.Fatalf("pageParams(%q) = %d, %d-byte cursor", query, limit, len(cursor))
		}
		if types, err := web.TypesParam(c); !refused("typesParam", err) {
			if len(types) > web.MaxTypes {
				t.Fatalf("typesParam(%q): %d types", query, len(types))
			}
			for i, ty := range types {
				if !web.KnownEventTypes[ty] || slices.Contains(types[:i], ty) {
					t.Fatalf("typesParam(%q): %q unknown or repeated", query, ty)
				}
			}
		}
		for _, name := range []string{"from", "to"} {
			if tm, err := web.TimeParam(c, name); !refused("timeParam", err) && !tm.IsZero() && tm.Location().String() != "UTC" {
				t.Fatalf("timeParam(%q, %s) = %v, not UTC", query, name, tm)
			}
		}
		if ef, err := parseEventFilter(c); !refused("parseEventFilter", err) {
			if (ef.format != formatCloudEvents && ef.format != formatOCSF) || len(ef.types) > maxTypeFilters || len(ef.account) > web.MaxPathID {
				t.Fatalf("parseEventFilter(%q) = %+v", query, ef)
			}
		}
	})
}
