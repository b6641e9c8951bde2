package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// benchRiskApp starts the app with the risk tests' city database and n accounts registered
// from London with Firefox; argon2 at cost (m, t) (0: production defaults).
func benchRiskApp(b *testing.B, n int, detector bool, mKiB, iter uint32) (*App, []string) {
	b.Helper()
	dir := b.TempDir()
	city := filepath.Join(dir, "city.mmdb")
	riskCityDB(b, city)
	a, stop := runApp(b, Config{Logger: discardLogger(), Listener: listen(b), DataDir: filepath.Join(dir, "data"),
		Argon2MemoryKiB: mKiB, Argon2Iterations: iter, GeoIPCityDB: city, DisableRiskDetector: !detector,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	b.Cleanup(stop)
	waitServing(b, a.URL())
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("bench%d@example.com", i)
		code, m := postJSON(b, a.URL()+"/api/v1/accounts", `{"email":"`+emails[i]+`","password":"`+riskPW+`","first_name":"B","last_name":"M"}`,
			"X-Forwarded-For", ipLondon, "User-Agent", uaFirefox)
		if code != 201 {
			b.Fatalf("register: %d %v", code, m)
		}
	}
	return a, emails
}

// benchIP is account k's address in London or São Paulo (one each, so that sign-in
// throttling by address does not see 50 sign-ins a second from one address).
func benchIP(k int, saoPaulo bool) string {
	if saoPaulo {
		return fmt.Sprintf("200.147.%d.%d", k/200, k%200+1)
	}
	return fmt.Sprintf("81.2.69.%d", k%250+1)
}

// benchLogin signs in through the API from ip and returns how long it took.
func benchLogin(b *testing.B, client *http.Client, base, email, ip string) time.Duration {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/login",
		bytesReader(`{"email":"`+email+`","password":"`+riskPW+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	req.Header.Set("User-Agent", uaFirefox)
	start := time.Now()
	resp, err := client.Do(req)
	d := time.Since(start)
	if err != nil {
		b.Error(err)
		return d
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["status"] != "authenticated" {
		b.Errorf("login %s: %d %v", email, resp.StatusCode, m)
	}
	return d
}

// BenchmarkSignInRiskLatency: b.N sign-ins at 50 (and 10) a second (open loop), each from the other
// side of the Atlantic than the account's previous one (London, São Paulo, London...), so
// that every one after an account's first is impossible travel and gets a SignInRiskDetected.
// The delay is measured in the log, between the RecordedAt of each LoginSucceeded and of its
// record (the store's clock: no polling in it). Low argon2 cost (m=8192 KiB, t=1): the rate
// is what the detector sees, and production hashing alone would take most of the two shared
// cores at 50 a second. Reports p50, p99 and the slowest delay, how many records were found
// (the benchmark fails unless every sign-in got one) and the rate achieved.
func BenchmarkSignInRiskLatency(b *testing.B) {
	for _, rate := range []int{50, 10} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchRiskLatency(b, rate) })
	}
}

// benchRiskLatency is BenchmarkSignInRiskLatency at rate sign-ins a second.
func benchRiskLatency(b *testing.B, rate int) {
	const accounts = 50
	a, emails := benchRiskApp(b, accounts, true, 8192, 1)
	client := &http.Client{Timeout: 30 * time.Second}
	base := a.URL()
	// Each account's first sign-in, from London (no signal).
	for k, e := range emails {
		benchLogin(b, client, base, e, benchIP(k, false))
	}
	ctx := context.Background()
	startPos, err := a.store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	sendStart := time.Now()
	for i := 0; i < b.N; i++ {
		<-tick.C
		email := emails[i%accounts]
		ip := benchIP(i%accounts, (i/accounts)%2 == 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			benchLogin(b, client, base, email, ip)
		}()
	}
	wg.Wait()
	achieved := float64(b.N) / time.Since(sendStart).Seconds()
	head, err := a.store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := a.RiskDetector().WaitFor(wctx, head); err != nil {
		b.Fatal(err)
	}
	// The detector may still be appending the last records: wait for the log to stop growing.
	deadline := time.Now().Add(30 * time.Second)
	var logins map[string]time.Time
	var delays []time.Duration
	for {
		logins, delays = map[string]time.Time{}, nil
		after := startPos
		for {
			page, err := a.store.ReadAll(ctx, after, 2000)
			if err != nil {
				b.Fatal(err)
			}
			for _, ev := range page {
				switch ev.Type {
				case domain.EventLoginSucceeded:
					logins[ev.ID] = ev.RecordedAt
				case domain.EventSignInRiskDetected:
					var r domain.SignInRiskDetected
					if err := json.Unmarshal(ev.Data, &r); err != nil {
						b.Fatal(err)
					}
					if t, ok := logins[r.LoginEventID]; ok {
						delays = append(delays, ev.RecordedAt.Sub(t))
					}
				}
			}
			if len(page) < 2000 {
				break
			}
			after = page[len(page)-1].Position
		}
		if len(delays) >= b.N || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // a benchmark's own settling, not a test's wait
	}
	b.StopTimer()
	if len(delays) != b.N {
		b.Errorf("%d records for %d risky sign-ins", len(delays), b.N)
	}
	slices.Sort(delays)
	pct := func(p float64) float64 {
		if len(delays) == 0 {
			return 0
		}
		return float64(delays[min(len(delays)-1, int(float64(len(delays))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(len(delays)), "records")
	b.ReportMetric(achieved, "signins/s")
}

// BenchmarkSignInDetector compares the sign-in latency with the detector on and off: in
// each run, b.N sequential sign-ins through the API (each one flagged by the detector when it
// is on) against an app with the detector, then b.N against an app without it, so that the
// two alternate within one run and across -count runs. Low argon2 cost, so that hashing does
// not hide a difference. Reports both p50s and their ratio (on / off).
func BenchmarkSignInDetector(b *testing.B) {
	measure := func(on bool) (p50, p99 float64) {
		const accounts = 20
		a, emails := benchRiskApp(b, accounts, on, 8192, 1)
		client := &http.Client{Timeout: 30 * time.Second}
		for k, e := range emails {
			benchLogin(b, client, a.URL(), e, benchIP(k, false))
		}
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			ip := benchIP(i%accounts, (i/accounts)%2 == 0)
			lat = append(lat, benchLogin(b, client, a.URL(), emails[i%accounts], ip))
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		return ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100])
	}
	onP50, onP99 := measure(true)
	offP50, offP99 := measure(false)
	b.ReportMetric(onP50, "on-p50-ms")
	b.ReportMetric(offP50, "off-p50-ms")
	b.ReportMetric(onP50/offP50, "on/off")
	b.ReportMetric(onP99, "on-p99-ms")
	b.ReportMetric(offP99, "off-p99-ms")
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }
