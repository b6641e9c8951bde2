package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkPortalPages measures the server-side cost of the portal's pages, through the
// real app over loopback HTTP with the session cookie: the account page (one aggregate
// load), the sessions page (a read-model query) and the activity page (a page of 25 rows,
// the map's sample of up to 500 rows and the 59 kB land outline), for an account with
// about 200 sign-ins from a located address.
func BenchmarkPortalPages(b *testing.B) {
	base := portalApp(b, nil)
	c := newPortalClient(b, base)
	c.signUp("bench@example.com")
	for i := range 100 {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/login",
			strings.NewReader(`{"email":"bench@example.com","password":"`+browserPassword+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("81.2.69.%d", 160+i%30))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("login %d: %d", i, resp.StatusCode)
		}
	}
	for _, path := range []string{"/account", "/sessions", "/activity"} {
		b.Run(path[1:], func(b *testing.B) {
			if a := c.get(path); a.status != http.StatusOK || a.path != path {
				b.Fatalf("GET %s: %d at %s", path, a.status, a.path)
			}
			for b.Loop() {
				c.get(path)
			}
		})
	}
}
