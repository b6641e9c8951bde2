// Command activity measures the page latency of the activity log endpoints of a running Vigil
// server over a seeded history (`vigil-dev seed`): GET /api/v1/me/activity for seeded accounts
// (first and second page) and GET /api/v1/audit/activity with each kind of filter, as an
// admin. Requests are sequential on one keep-alive connection; it prints p50/p99 per shape.
//
//	go run ./cmd/vigil-dev seed --data-dir D --accounts 10000 --events 1000000
//	vigil --data-dir D --admin-emails bench-admin@vigil.test &
//	go run ./bench/activity -data-dir D -url http://127.0.0.1:8080
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

const (
	adminEmail    = "bench-admin@vigil.test"
	adminPassword = "bench admin passphrase 7Qx!"
	seedPassword  = "correct horse battery staple" // vigil-dev seed's
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the server")
	dataDir := flag.String("data-dir", "./vigil-data", "the server's data directory (the seeded accounts are read from its log)")
	n := flag.Int("n", 1000, "requests per shape")
	users := flag.Int("users", 20, "seeded accounts signed in for /me/activity")
	flag.Parse()

	accounts, emails, ips := seeded(*dataDir)
	log.Printf("%d seeded accounts, %d addresses", len(accounts), len(ips))
	c := &client{base: *base, http: &http.Client{Timeout: 30 * time.Second}}
	c.post("/api/v1/accounts", "", map[string]any{"email": adminEmail, "password": adminPassword, "first_name": "Bench", "last_name": "Admin"})
	admin := c.login(adminEmail, adminPassword)
	if admin == "" {
		log.Fatal("cannot sign in as the admin (start the server with --admin-emails " + adminEmail + ")")
	}
	var tokens []string
	r := rand.New(rand.NewPCG(1, 2))
	for _, i := range r.Perm(len(emails)) {
		if len(tokens) == *users {
			break
		}
		if tok := c.login(emails[i], seedPassword); tok != "" {
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) == 0 {
		log.Fatal("no seeded account without a second factor")
	}

	day := time.Now().UTC().AddDate(0, 0, -30).Truncate(24 * time.Hour)
	shapes := []struct {
		name  string
		token func() string
		path  func() string
	}{
		{"/me/activity (first page)", func() string { return tokens[r.IntN(len(tokens))] }, func() string { return "/api/v1/me/activity" }},
		{"/me/activity (second page)", nil, nil}, // filled below: follows next_cursor
		{"/audit/activity (no filter)", func() string { return admin }, func() string { return "/api/v1/audit/activity" }},
		{"/audit/activity?account=", func() string { return admin }, func() string { return "/api/v1/audit/activity?account=" + accounts[r.IntN(len(accounts))] }},
		{"/audit/activity?ip=", func() string { return admin }, func() string { return "/api/v1/audit/activity?ip=" + url.QueryEscape(ips[r.IntN(len(ips))]) }},
		{"/audit/activity?country=DE", func() string { return admin }, func() string { return "/api/v1/audit/activity?country=DE" }},
		{"/audit/activity?type=LoginFailed", func() string { return admin }, func() string { return "/api/v1/audit/activity?type=LoginFailed" }},
		{"/audit/activity?outcome=failure&country=BR", func() string { return admin }, func() string { return "/api/v1/audit/activity?outcome=failure&country=BR" }},
		{"/audit/activity?from=&to= (one day)", func() string { return admin }, func() string {
			return "/api/v1/audit/activity?from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339)
		}},
		{"/audit/activity?type=PasswordChanged&country=JP&from=&to= (one day)", func() string { return admin }, func() string {
			return "/api/v1/audit/activity?type=PasswordChanged&country=JP&from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339)
		}},
		{"/audit/activity?account=&type=EmailChanged (rare)", func() string { return admin }, func() string {
			return "/api/v1/audit/activity?type=EmailChanged&account=" + accounts[r.IntN(len(accounts))]
		}},
	}
	fmt.Printf("| request | p50 ms | p99 ms | items on the page (median) |\n|---|---|---|---|\n")
	for _, sh := range shapes {
		var lat []time.Duration
		var items []int
		for i := range *n + 50 {
			tok := admin
			var path string
			if sh.path == nil { // second page of /me/activity
				tok = tokens[r.IntN(len(tokens))]
				_, next := c.get("/api/v1/me/activity", tok)
				if next == "" {
					continue
				}
				path = "/api/v1/me/activity?cursor=" + url.QueryEscape(next)
			} else {
				tok, path = sh.token(), sh.path()
			}
			start := time.Now()
			got, _ := c.get(path, tok)
			if i >= 50 {
				lat = append(lat, time.Since(start))
				items = append(items, got)
			}
		}
		if len(lat) == 0 {
			fmt.Printf("| %s | - | - | no second pages |\n", sh.name)
			continue
		}
		slices.Sort(lat)
		slices.Sort(items)
		p := func(q int) string { return fmt.Sprintf("%.2f", float64(lat[len(lat)*q/100].Microseconds())/1000) }
		fmt.Printf("| %s | %s | %s | %d |\n", sh.name, p(50), p(99), items[len(items)/2])
	}
}

// seeded returns the account ids and emails registered in the log, and the addresses seen.
func seeded(dir string) (ids, emails, ips []string) {
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	seenIP := map[string]bool{}
	for after := uint64(0); ; {
		page, err := store.ReadAll(context.Background(), after, 10000)
		if err != nil {
			log.Fatal(err)
		}
		if len(page) == 0 {
			return ids, emails, ips
		}
		for _, ev := range page {
			if ip := ev.Metadata.IP; ip != "" && !seenIP[ip] && len(ips) < 5000 {
				seenIP[ip] = true
				ips = append(ips, ip)
			}
			if ev.Type != domain.EventAccountRegistered {
				continue
			}
			e, err := domain.DecodeEvent(ev)
			if err != nil {
				log.Fatal(err)
			}
			reg := e.(domain.AccountRegistered)
			if reg.Email != adminEmail {
				ids, emails = append(ids, reg.AccountID), append(emails, reg.Email)
			}
		}
		after = page[len(page)-1].Position
	}
}

type client struct {
	base string
	http *http.Client
}

func (c *client) post(path, token string, body any) (int, map[string]any) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// login returns a session token, or "" when the account needs a second factor or the
// password is wrong.
func (c *client) login(email, password string) string {
	code, out := c.post("/api/v1/login", "", map[string]any{"email": email, "password": password})
	if code != http.StatusOK || out["status"] != "authenticated" {
		return ""
	}
	tok, _ := out["session_token"].(string)
	return tok
}

// get fetches a page and returns its number of items and its next_cursor; any status but
// 200 stops the program.
func (c *client) get(path, token string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(os.Stderr, "GET %s: %d %s\n", path, resp.StatusCode, b)
		os.Exit(1)
	}
	var page struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor string            `json:"next_cursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		log.Fatal(err)
	}
	return len(page.Items), page.NextCursor
}
