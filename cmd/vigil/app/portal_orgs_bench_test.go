package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkPortalOrgPages measures the server-side cost of the organisation pages, through
// the real app over loopback HTTP with the session cookie, for an organisation of 100
// members (one full member page): the Organisations list (the directory), the
// organisation's page (an event-stream load of the organisation, the members' read-model
// query, rendered twice: members and the two-factor report) and the members' activity (25
// rows with the member's email, the map's sample).
func BenchmarkPortalOrgPages(b *testing.B) {
	base := portalApp(b, nil)
	c := newPortalClient(b, base)
	c.signUp("owner@example.com")
	tok := csrf(b, c.get("/orgs"))
	org := c.post("/orgs", url.Values{"csrf_token": {tok}, "name": {"Bench Org"}})
	if !strings.HasPrefix(org.path, "/orgs/") {
		b.Fatalf("create: %d %s", org.status, org.path)
	}
	for i := range 99 {
		email := fmt.Sprintf("m%03d@example.com", i)
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/accounts", strings.NewReader(
			`{"email":"`+email+`","password":"`+browserPassword+`","first_name":"M","last_name":"B"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("account %d: %d", i, resp.StatusCode)
		}
		if a := c.post(org.path+"/members", url.Values{"csrf_token": {tok}, "email": {email}, "role": {"member"}}); a.status != 200 {
			b.Fatalf("member %d: %d", i, a.status)
		}
	}
	for _, path := range []string{"/orgs", org.path, org.path + "/activity"} {
		name := strings.NewReplacer(org.path, "org").Replace(path)
		b.Run(strings.TrimPrefix(name, "/"), func(b *testing.B) {
			if a := c.get(path); a.status != http.StatusOK || a.path != path {
				b.Fatalf("GET %s: %d at %s", path, a.status, a.path)
			}
			for b.Loop() {
				c.get(path)
			}
		})
	}
}
