package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

// Addresses of the risk tests' city database.
const (
	ipLondon    = "81.2.69.142" // London, GB, accuracy 10 km
	ipLondon2   = "81.2.69.143" // the same network
	ipSaoPaulo  = "200.147.3.7" // São Paulo, BR, accuracy 20 km
	ipManchest  = "2.24.10.9"   // Manchester, GB, accuracy 200 km (a coarse record)
	ipUnknown   = "8.8.8.8"     // in no database
	uaFirefox   = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaChromeMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	riskPW      = "umbrella-cactus-violin-47"
)

// riskCityDB writes the risk tests' GeoLite2-style city database to path.
func riskCityDB(t testing.TB, path string) {
	t.Helper()
	geoiptest.WriteCityDB(t, path, []geoiptest.CityEntry{
		{Network: "81.2.69.0/24", City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB",
			Lat: 51.5142, Lon: -0.0931, AccuracyRadius: 10},
		{Network: "200.147.0.0/16", City: "São Paulo", Region: "São Paulo", Country: "Brazil", CountryCode: "BR",
			Lat: -23.5475, Lon: -46.6361, AccuracyRadius: 20},
		{Network: "2.24.0.0/16", City: "Manchester", Region: "England", Country: "United Kingdom", CountryCode: "GB",
			Lat: 53.4809, Lon: -2.2374, AccuracyRadius: 200},
	})
}

// riskEnv is a running app with the risk tests' city database, trusting loopback proxies so
// that a request's X-Forwarded-For is its address, on an injected clock.
type riskEnv struct {
	t    *testing.T
	a    *App
	base string
	clk  *testkit.Clock
	dir  string
	stop func()
}

func startRiskApp(t *testing.T, dir string, clk *testkit.Clock, mutate ...func(*Config)) *riskEnv {
	t.Helper()
	city := filepath.Join(dir, "city.mmdb")
	if _, err := os.Stat(city); err != nil {
		riskCityDB(t, city)
	}
	cfg := Config{Logger: discardLogger(), Listener: listen(t), DataDir: filepath.Join(dir, "data"),
		Argon2MemoryKiB: 8192, Argon2Iterations: 1, Now: clk.Now, GeoIPCityDB: city,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for _, m := range mutate {
		m(&cfg)
	}
	a, stop := runApp(t, cfg)
	waitServing(t, a.URL())
	return &riskEnv{t: t, a: a, base: a.URL(), clk: clk, dir: dir, stop: stop}
}

func (e *riskEnv) register(email, ip, ua string) string {
	e.t.Helper()
	code, m := postJSON(e.t, e.base+"/api/v1/accounts", `{"email":"`+email+`","password":"`+riskPW+`","first_name":"Ann","last_name":"Lee"}`,
		"X-Forwarded-For", ip, "User-Agent", ua)
	id, _ := m["account_id"].(string)
	if code != 201 || id == "" {
		e.t.Fatalf("register %s: %d %v", email, code, m)
	}
	return id
}

// login signs in from ip with ua and waits until the detector has judged the sign-in; it
// returns the session id.
func (e *riskEnv) login(email, ip, ua string) string {
	e.t.Helper()
	code, m := postJSON(e.t, e.base+"/api/v1/login", `{"email":"`+email+`","password":"`+riskPW+`"}`,
		"X-Forwarded-For", ip, "User-Agent", ua)
	sess, _ := m["session"].(map[string]any)
	sid, _ := sess["session_id"].(string)
	if code != 200 || sid == "" {
		e.t.Fatalf("login %s: %d %v", email, code, m)
	}
	if e.a.RiskDetector() != nil {
		e.judged()
	}
	return sid
}

// judged waits until the detector has handled the whole log.
func (e *riskEnv) judged() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := e.a.store.Head(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.a.RiskDetector().WaitFor(ctx, head); err != nil {
		e.t.Fatalf("the detector did not reach %d: %v", head, err)
	}
}

// risks returns the account's SignInRiskDetected events with their envelopes.
func (e *riskEnv) risks(accountID string) ([]domain.SignInRiskDetected, []domain.Envelope) {
	e.t.Helper()
	evs, err := e.a.store.ReadStream(context.Background(), domain.AccountStream(accountID), 1, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []domain.SignInRiskDetected
	var envs []domain.Envelope
	for _, ev := range evs {
		if ev.Type != domain.EventSignInRiskDetected {
			continue
		}
		d, err := domain.DecodeEvent(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		out, envs = append(out, d.(domain.SignInRiskDetected)), append(envs, ev)
	}
	return out, envs
}

// TestSignInRiskSignals runs the detector in the real app with a real city database: the
// registration's device gives no signal; London then São Paulo within a minute is a new
// country and impossible travel; a new browser from the same address is a new device only;
// an unknown location is never impossible travel; nearby sign-ins within the accuracy radii
// are not; the record shows in the activity log, located like the sign-in, and marks it.
func TestSignInRiskSignals(t *testing.T) {
	clk := testkit.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := startRiskApp(t, t.TempDir(), clk)

	// Ann: registered in London with Firefox on Linux.
	ann := e.register("ann@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	e.login("ann@example.com", ipLondon2, uaFirefox)
	if got, _ := e.risks(ann); len(got) != 0 {
		t.Fatalf("the registration's device and place gave %+v", got)
	}
	clk.Advance(40 * time.Second)
	sp := e.login("ann@example.com", ipSaoPaulo, uaFirefox)
	got, envs := e.risks(ann)
	if len(got) != 1 {
		t.Fatalf("after São Paulo: %+v", got)
	}
	r := got[0]
	if !slices.Equal(r.Signals, []string{domain.SignalNewCountry, domain.SignalImpossibleTravel}) || r.SessionID != sp ||
		r.Country != "BR" || r.PreviousCountry != "GB" || r.Device != "Firefox on Linux" || r.LoginEventID == "" {
		t.Errorf("São Paulo: %+v", r)
	}
	// About 9,490 km less 30 km of radii in 40 s.
	if r.SpeedKMH < 800_000 || r.SpeedKMH > 900_000 {
		t.Errorf("speed %d km/h", r.SpeedKMH)
	}
	if md := envs[0].Metadata; md.IP != ipSaoPaulo || md.UserAgent != uaFirefox || md.Actor.Type != domain.ActorSystem {
		t.Errorf("metadata %+v", md)
	}

	// Bob: a new browser from the registration's address: a new device only.
	bob := e.register("bob@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	e.login("bob@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	chrome := e.login("bob@example.com", ipLondon, uaChromeMac)
	if got, _ := e.risks(bob); len(got) != 1 || !slices.Equal(got[0].Signals, []string{domain.SignalNewDevice}) ||
		got[0].SessionID != chrome || got[0].Device != "Chrome on macOS" || got[0].Country != "GB" {
		t.Errorf("new browser: %+v", got)
	}
	// The same browser again, a version later: nothing new.
	clk.Advance(time.Minute)
	e.login("bob@example.com", ipLondon, strings.Replace(uaChromeMac, "Chrome/126", "Chrome/127", 1))
	if got, _ := e.risks(bob); len(got) != 1 {
		t.Errorf("a browser update: %+v", got)
	}

	// Carol: an unknown location right after London is no travel at all; neither is London
	// after it nor Manchester 260 km away within 10 minutes (200 + 10 km of radii).
	carol := e.register("carol@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	e.login("carol@example.com", ipLondon, uaFirefox)
	clk.Advance(10 * time.Second)
	e.login("carol@example.com", ipUnknown, uaFirefox)
	clk.Advance(10 * time.Second)
	e.login("carol@example.com", ipLondon, uaFirefox)
	clk.Advance(10 * time.Minute)
	e.login("carol@example.com", ipManchest, uaFirefox)
	if got, _ := e.risks(carol); len(got) != 0 {
		t.Errorf("unknown or nearby locations: %+v", got)
	}

	// Dan: registered and signed in from nowhere known, then São Paulo: no previous
	// location, no known country: no signal.
	dan := e.register("dan@example.com", ipUnknown, uaFirefox)
	clk.Advance(time.Minute)
	e.login("dan@example.com", ipUnknown, uaFirefox)
	clk.Advance(time.Second)
	e.login("dan@example.com", ipSaoPaulo, uaFirefox)
	if got, _ := e.risks(dan); len(got) != 0 {
		t.Errorf("from an unknown location: %+v", got)
	}

	// The activity log shows the record where the sign-in was, and marks the sign-in.
	code, m := postJSON(t, e.base+"/api/v1/login", `{"email":"ann@example.com","password":"`+riskPW+`"}`,
		"X-Forwarded-For", ipSaoPaulo, "User-Agent", uaFirefox)
	token, _ := m["session_token"].(string)
	if code != 200 {
		t.Fatalf("login: %d %v", code, m)
	}
	e.judged()
	rows := activityRows(t, e.base+"/api/v1/me/activity?limit=50", token)
	var risk, signIn map[string]any
	for _, row := range rows {
		switch {
		case row["type"] == domain.EventSignInRiskDetected:
			risk = row
		case row["type"] == domain.EventLoginSucceeded && row["id"] == r.LoginEventID:
			signIn = row
		}
	}
	if risk == nil || risk["description"] != "Unusual sign-in: new country, impossible travel" || risk["ip"] != ipSaoPaulo {
		t.Errorf("activity row of the record: %v", risk)
	}
	if loc, _ := risk["location"].(map[string]any); loc["country_code"] != "BR" {
		t.Errorf("the record is not located in Brazil: %v", risk["location"])
	}
	if det, _ := signIn["details"].(map[string]any); det == nil || !sameStrings(det["signals"], []string{"new_country", "impossible_travel"}) {
		t.Errorf("the sign-in's row is not marked: %v", signIn)
	}
}

// activityRows GETs an activity list with the bearer token.
func activityRows(t *testing.T, url, token string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []map[string]any `json:"items"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&page) != nil {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return page.Items
}

func sameStrings(v any, want []string) bool {
	list, _ := v.([]any)
	if len(list) != len(want) {
		return false
	}
	for i, x := range list {
		if x != want[i] {
			return false
		}
	}
	return true
}

// TestSignInRiskReplayAddsNothing: a detector that handles its sign-ins again (its
// checkpoint moved back, as after a crash before it was saved) records no second event;
// and a detector starting on an existing log does not judge the sign-ins before it.
func TestSignInRiskReplayAddsNothing(t *testing.T) {
	clk := testkit.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	e := startRiskApp(t, dir, clk)
	ann := e.register("ann@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	e.login("ann@example.com", ipLondon, uaFirefox)
	clk.Advance(30 * time.Second)
	e.login("ann@example.com", ipSaoPaulo, uaChromeMac)
	if got, _ := e.risks(ann); len(got) != 1 || len(got[0].Signals) != 3 {
		t.Fatalf("before the replay: %+v", got)
	}
	e.stop()

	// Move the checkpoint back to the start: every sign-in is judged again.
	db, err := follow.OpenSQLite(follow.SQLiteConfig{Path: filepath.Join(dir, "data", RiskFile)})
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.SaveCheckpoint(context.Background(), db, "signin-risk", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e = startRiskApp(t, dir, clk)
	e.judged()
	if got, _ := e.risks(ann); len(got) != 1 {
		t.Errorf("after the replay: %d records, want 1: %+v", len(got), got)
	}
	e.stop()

	// A detector that never ran starts at the log's head: sign-ins made while it was off
	// are not judged.
	e = startRiskApp(t, dir, clk, func(c *Config) { c.DisableRiskDetector = true })
	if e.a.RiskDetector() != nil {
		t.Fatal("DisableRiskDetector left the detector on")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(filepath.Join(dir, "data", RiskFile+suffix))
	}
	eve := e.register("eve@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Minute)
	e.login("eve@example.com", ipLondon, uaFirefox)
	clk.Advance(time.Second)
	e.login("eve@example.com", ipSaoPaulo, uaChromeMac)
	e.stop()
	e = startRiskApp(t, dir, clk)
	e.judged()
	if got, _ := e.risks(eve); len(got) != 0 {
		t.Errorf("a new detector judged old sign-ins: %+v", got)
	}
	// New sign-ins are judged.
	clk.Advance(time.Second)
	e.login("eve@example.com", ipLondon, uaChromeMac)
	if got, _ := e.risks(eve); len(got) != 1 || !slices.Equal(got[0].Signals, []string{domain.SignalImpossibleTravel}) {
		t.Errorf("after the start: %+v", got)
	}
}
