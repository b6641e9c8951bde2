package portal

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/handlers/portal/portaltest"
)

// FuzzSafeNext: safeNext answers the default or next itself, and what it accepts, sent as
// a redirect (net/http cleans the path) with or without "done=...", is a plain path that a
// browser resolves on this site's origin.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"/security", "/audit?q=a%2Fb&x=1", "/account#profile", "/", "/orgs/o-1/members?cursor=YTo3",
		"/\t/evil.example/x", "/\n/evil", "//evil", "/\\evil", "/%2F%2Fevil", "/%5Cevil", "https://evil", "/..//evil",
		"/a/../\\evil", "/./\t/x", "/%2e%2e//x", "/\u3000/x", "/@evil", "http:evil", "/\x00", "/x?y=//evil#//evil",
		"/x/../../..//evil", "/a/.", "/%zz", "/%E2%80%8B", "/" + strings.Repeat("a", 600),
	} {
		f.Add(s)
	}
	origin, _ := url.Parse("https://vigil.example")
	f.Fuzz(func(t *testing.T, next string) {
		const def = "/default"
		got := safeNext(next, def)
		if got == def {
			return
		}
		if got != next {
			t.Fatalf("safeNext(%q) = %q, neither next nor the default", next, got)
		}
		for _, to := range []string{got, withQuery(got, "done=x")} {
			rec := httptest.NewRecorder()
			http.Redirect(rec, httptest.NewRequest(http.MethodPost, "/signin", nil), to, http.StatusSeeOther)
			if err := portaltest.SameOrigin(origin, rec.Header().Get("Location")); err != nil {
				t.Fatalf("safeNext(%q): %v", next, err)
			}
		}
	})
}
