package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

// seedOptions are the flags of `vigil-dev seed`.
var seedOptions = []cli.Option{
	{Flag: "data-dir", Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "data directory holding events.db"},
	{Flag: "accounts", Env: "VIGIL_SEED_ACCOUNTS", Def: "1000", Meta: "N", Help: "accounts to create, at least 1 and at most --events"},
	{Flag: "events", Env: "VIGIL_SEED_EVENTS", Def: "100000", Meta: "N", Help: "events to write in all (approximately)"},
	{Flag: "seed", Env: "VIGIL_SEED_SEED", Def: "1", Meta: "N", Help: "random seed; the same seed (and --until) gives the same history"},
	{Flag: "writers", Env: "VIGIL_SEED_WRITERS", Def: "128", Meta: "N", Help: "concurrent appending goroutines"},
	{Flag: "until", Env: "VIGIL_SEED_UNTIL", Meta: "TIME", DefHelp: "now, to the minute", Help: "end of the 90-day history, RFC 3339"},
	{Flag: "city-db", Env: "VIGIL_SEED_CITY_DB", Meta: "FILE", DefHelp: "none", Help: "also write a GeoIP2-City mmdb locating the seeded addresses to this file (for --geoip-city-db)"},
}

// runSeed writes a synthetic but realistic history of about --events events for
// --accounts accounts through the embedded event store (<data-dir>/events.db): sign-ups with
// their email reservations, sign-ins from many countries and user agents, session use,
// sign-outs and expiries, failed sign-ins (known and unknown emails) and credential changes.
//
// The whole history is planned first (deterministic for a given --seed and --until: the same
// streams with the same events, ids and times), then appended in time order by several
// writers. Every stream always goes to the same writer, so each stream is appended in order
// with the exact expected version (expect.Any for LoginFailed, as the real commands do); the
// global order follows time at the granularity of the writers' queues.
func runSeed(ctx context.Context, s cli.Settings, e cli.Env) int {
	usage := func(err error) int {
		fmt.Fprintf(e.Stderr, "vigil-dev: seed: %v\n", err)
		return cli.ExitUsage
	}
	accounts, err := cli.ParseInt(s["accounts"], 1)
	if err != nil {
		return usage(err)
	}
	events, err := cli.ParseInt(s["events"], 1)
	if err != nil {
		return usage(err)
	}
	if accounts > events {
		return usage(errors.New("--accounts must not exceed --events"))
	}
	writers, err := cli.ParseInt(s["writers"], 1)
	if err != nil {
		return usage(err)
	}
	seed, err := strconv.ParseUint(s["seed"].Value, 10, 64)
	if err != nil {
		return usage(s["seed"].Errorf("%q is not a whole number", s["seed"].Value))
	}
	until := time.Now().UTC().Truncate(time.Minute)
	if u := s["until"]; u.Value != "" {
		t, err := time.Parse(time.RFC3339, u.Value)
		if err != nil {
			return usage(u.Errorf("%v", err))
		}
		until = t.UTC()
	}
	cityDB, dataDir := s["city-db"].Value, s["data-dir"].Value

	if cityDB != "" {
		if err := writeSeedCityDB(cityDB); err != nil {
			fmt.Fprintf(e.Stderr, "vigil-dev: seed: --city-db: %v\n", err)
			return cli.ExitFailure
		}
	}
	start := time.Now()
	plan, err := planSeed(seedConfig{Accounts: int(accounts), Events: int(events), Seed: seed, Until: until})
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: seed: %v\n", err)
		return cli.ExitFailure
	}
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dataDir, app.EventsFile), Logger: cli.NewLogger(e.Stderr)})
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: --data-dir: %v\n", err)
		return cli.ExitFailure
	}
	defer store.Close()

	var written atomic.Int64
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				n := written.Load()
				el := time.Since(start)
				fmt.Fprintf(e.Stderr, "seed: %d/%d events written, %.0f events/s, %s\n",
					n, plan.events, float64(n)/el.Seconds(), el.Truncate(time.Second))
			}
		}
	}()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queues := make([]chan *seedAppend, writers)
	var (
		wg      sync.WaitGroup
		failMu  sync.Mutex
		failErr error
	)
	for w := range queues {
		queues[w] = make(chan *seedAppend, 64)
		wg.Add(1)
		go func(q <-chan *seedAppend) {
			defer wg.Done()
			for a := range q {
				if wctx.Err() != nil {
					continue // drain
				}
				data := make([]domain.EventData, len(a.events))
				var err error
				for i, pe := range a.events {
					v, ok := domain.Catalog().CurrentVersion(domain.EventTypeOf(pe.ev))
					if !ok {
						err = fmt.Errorf("unknown event type %s", domain.EventTypeOf(pe.ev))
						break
					}
					if data[i], err = domain.NewEventData(domain.EventTypeOf(pe.ev), v, pe.ev, pe.md); err != nil {
						break
					}
					data[i].ID = pe.id
				}
				if err == nil {
					_, err = store.Append(wctx, a.stream, a.expected, data)
				}
				if err != nil {
					failMu.Lock()
					if failErr == nil {
						failErr = fmt.Errorf("append to %s: %w", a.stream, err)
					}
					failMu.Unlock()
					cancel()
					continue
				}
				written.Add(int64(len(a.events)))
			}
		}(queues[w])
	}
dispatch:
	for _, a := range plan.appends {
		select {
		case queues[a.writer(len(queues))] <- a:
		case <-wctx.Done():
			break dispatch
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone
	if failErr == nil && ctx.Err() != nil {
		failErr = ctx.Err()
	}
	if failErr != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: seed: %v (%d events written)\n", failErr, written.Load())
		return cli.ExitFailure
	}
	el := time.Since(start)
	fmt.Fprintf(e.Stderr, "seed: wrote %d events (%d appends) for %d accounts, %d sessions, %d streams in %s: %.0f events/s\n",
		written.Load(), len(plan.appends), accounts, plan.sessions, plan.streams, el.Truncate(time.Millisecond),
		float64(written.Load())/el.Seconds())
	return cli.ExitOK
}

// seedConfig is what planSeed needs.
type seedConfig struct {
	Accounts, Events int
	Seed             uint64
	Until            time.Time
}

// seedAppend is one planned Append: events of one stream with the expected version.
type seedAppend struct {
	at       time.Time
	seq      int // planning order, to keep sorting stable
	stream   string
	expected expect.Version
	events   []seedEvent
}

func (a *seedAppend) writer(n int) int {
	h := fnv.New32a()
	h.Write([]byte(a.stream))
	return int(h.Sum32() % uint32(n))
}

type seedEvent struct {
	id string
	ev domain.Event
	md domain.Metadata
}

// seedPlan is the planned history, sorted by time.
type seedPlan struct {
	appends           []*seedAppend
	events            int
	sessions, streams int
}

// seedHistory is the length of the synthetic history.
const seedHistory = 90 * 24 * time.Hour

// seedCountry is a real public IPv4 range allocated to a country, with a place in it (for
// the City database --city-db writes).
type seedCountry struct {
	code     string
	prefix   netip.Prefix
	weight   int
	country  string
	city     string
	region   string
	lat, lon float64
}

// seedCountries are ranges of a dozen countries' networks (RIR allocations; the first three
// are also in MaxMind's test databases).
var seedCountries = []seedCountry{
	{"GB", netip.MustParsePrefix("81.2.69.0/24"), 12, "United Kingdom", "London", "England", 51.5142, -0.0931},
	{"US", netip.MustParsePrefix("216.160.83.0/24"), 25, "United States", "Milton", "Washington", 47.2513, -122.3149},
	{"SE", netip.MustParsePrefix("89.160.20.0/24"), 3, "Sweden", "Linköping", "Östergötland County", 58.4167, 15.6167},
	{"CN", netip.MustParsePrefix("175.16.199.0/24"), 4, "China", "Changchun", "Jilin Sheng", 43.88, 125.3228},
	{"DE", netip.MustParsePrefix("2.160.0.0/16"), 10, "Germany", "Berlin", "Land Berlin", 52.5196, 13.4069},
	{"FR", netip.MustParsePrefix("90.0.0.0/16"), 8, "France", "Paris", "Île-de-France", 48.8534, 2.3488},
	{"JP", netip.MustParsePrefix("126.0.0.0/16"), 6, "Japan", "Tokyo", "Tokyo", 35.6895, 139.6917},
	{"BR", netip.MustParsePrefix("177.32.0.0/16"), 6, "Brazil", "São Paulo", "São Paulo", -23.5475, -46.6361},
	{"IN", netip.MustParsePrefix("49.36.0.0/16"), 8, "India", "Mumbai", "Maharashtra", 19.0728, 72.8826},
	{"AU", netip.MustParsePrefix("1.120.0.0/16"), 4, "Australia", "Sydney", "New South Wales", -33.8678, 151.2073},
	{"CA", netip.MustParsePrefix("24.114.0.0/16"), 5, "Canada", "Toronto", "Ontario", 43.7001, -79.4163},
	{"ES", netip.MustParsePrefix("88.0.0.0/16"), 4, "Spain", "Madrid", "Madrid", 40.4165, -3.7026},
	{"NG", netip.MustParsePrefix("105.112.0.0/16"), 2, "Nigeria", "Lagos", "Lagos", 6.4541, 3.3947},
	{"NL", netip.MustParsePrefix("77.160.0.0/16"), 3, "Netherlands", "Amsterdam", "North Holland", 52.374, 4.8897},
}

// writeSeedCityDB writes a GeoIP2-City mmdb that locates every range the seed uses.
func writeSeedCityDB(path string) error {
	entries := make([]geoiptest.CityEntry, len(seedCountries))
	for i, c := range seedCountries {
		entries[i] = geoiptest.CityEntry{Network: c.prefix.String(), City: c.city, Region: c.region,
			Country: c.country, CountryCode: c.code, Lat: c.lat, Lon: c.lon}
	}
	return geoiptest.CityDB(path, entries)
}

// seedUserAgents are real desktop, mobile and API client user agents; api marks those that
// come with a client application.
var seedUserAgents = []struct {
	ua  string
	api bool
}{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", false},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", false},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", false},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", false},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", false},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", false},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", false},
	{"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", false},
	{"Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1", false},
	{"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", false},
	{"curl/8.5.0", true},
	{"python-requests/2.32.3", true},
	{"okhttp/4.12.0", true},
	{"Go-http-client/2.0", true},
}

var seedFirstNames = []string{"Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
	"Radia", "Tim", "Hedy", "Donald", "Sophie", "Yuki", "Amara", "Lucas", "Priya", "Mateo"}
var seedLastNames = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
	"Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "Knuth", "Wilson", "Tanaka", "Okafor", "Silva", "Sharma", "Garcia"}
var seedEmailDomains = []string{"example.com", "example.org", "example.net", "mail.example", "corp.example"}

// seedClients are client applications whose users sign in here (API user agents use them).
var seedClients = []string{"Acme Mobile", "Acme CLI", "Partner Portal"}

// seedShared holds what is computed once and reused by every account.
type seedShared struct {
	passwordHash string
	sealed       credential.SealedSecret
	clientIDs    []string
	keyring      *credential.Keyring // the seed's dev key: TOTP secrets and email indexes
}

// seedReader is a deterministic io.Reader over a PCG source.
type seedReader struct{ r *rand.Rand }

func (s seedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

// seedID returns a UUIDv7 for time t with random bits from r.
func seedID(r *rand.Rand, t time.Time) string {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	var hi [8]byte
	binary.BigEndian.PutUint64(hi[:], ms<<16|uint64(r.Uint32()&0xffff))
	copy(u[:8], hi[:])
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u.String()
}

func seedShare(r *rand.Rand) (seedShared, error) {
	var sh seedShared
	h, err := credential.NewArgon2Hasher(credential.Argon2Config{Rand: seedReader{r}})
	if err != nil {
		return sh, err
	}
	if sh.passwordHash, err = h.Hash("correct horse battery staple"); err != nil {
		return sh, err
	}
	key := sha256.Sum256([]byte("vigil dev seed test key"))
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: key[:], Rand: seedReader{r}})
	if err != nil {
		return sh, err
	}
	secret := make([]byte, 20)
	seedReader{r}.Read(secret)
	if sh.sealed, err = kr.Seal(secret, []byte("dev-seed")); err != nil {
		return sh, err
	}
	sh.keyring = kr
	return sh, nil
}

// seedIP returns a random address of the country's range.
func seedIP(r *rand.Rand, c seedCountry) string {
	a := c.prefix.Addr().As4()
	host := 32 - c.prefix.Bits()
	v := binary.BigEndian.Uint32(a[:]) | (r.Uint32() & (1<<host - 1))
	if v&0xff == 0 || v&0xff == 0xff {
		v = v&^0xff | 0x2a
	}
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a).String()
}

func seedPickCountry(r *rand.Rand) seedCountry {
	total := 0
	for _, c := range seedCountries {
		total += c.weight
	}
	n := r.IntN(total)
	for _, c := range seedCountries {
		if n < c.weight {
			return c
		}
		n -= c.weight
	}
	return seedCountries[0]
}

// seedAction kinds of an account's history after registration.
const (
	actSignIn = iota
	actFailed
	actPassword
	actProfile
	actTOTP
	actBackup
)

// planSeed plans the history: per account a budget of events (about Events/Accounts each,
// some accounts much busier than others), filled with actions at sorted times after
// registration; plus failed sign-ins for unknown emails on system-signin.
func planSeed(cfg seedConfig) (*seedPlan, error) {
	root := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	sh, err := seedShare(root)
	if err != nil {
		return nil, err
	}
	from := cfg.Until.Add(-seedHistory)
	p := &seedPlan{}
	seq := 0
	add := func(at time.Time, stream string, expected expect.Version, evs ...seedEvent) {
		p.appends = append(p.appends, &seedAppend{at: at, seq: seq, stream: stream, expected: expected, events: evs})
		seq++
		p.events += len(evs)
	}
	// Clients, registered before the history starts.
	for i, name := range seedClients {
		at := from.Add(-time.Duration(len(seedClients)-i) * time.Hour)
		id := seedID(root, at)
		sh.clientIDs = append(sh.clientIDs, id)
		add(at, domain.ClientStream(id), expect.NoStream, seedEvent{id: seedID(root, at),
			ev: domain.ClientRegistered{ClientID: id, Name: name, At: at},
			md: domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, CorrelationID: seedID(root, at)}})
	}
	p.streams = len(seedClients)
	budget := cfg.Events - len(seedClients)
	// About 2% of the events are sign-ins with unknown emails (none for tiny histories).
	unknown := 0
	if budget-cfg.Accounts*2 > 50 {
		unknown = budget / 50
	}
	budget -= unknown
	// Budgets: weights drawn from a heavy-ish tail, scaled to the total; every account
	// gets at least its 2 registration events.
	weights := make([]float64, cfg.Accounts)
	var sum float64
	for i := range weights {
		weights[i] = 0.2 + root.ExpFloat64()
		sum += weights[i]
	}
	spare := max(budget-2*cfg.Accounts, 0)
	budgets := make([]int, cfg.Accounts)
	given := 0
	for i, w := range weights {
		budgets[i] = 2 + int(float64(spare)*w/sum)
		given += budgets[i]
	}
	for i := 0; given < budget; i = (i + 1) % cfg.Accounts {
		budgets[i]++
		given++
	}
	for i := range cfg.Accounts {
		r := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))
		planAccount(p, add, r, i, budgets[i], from, cfg.Until, &sh)
	}
	// Unknown emails on system-signin, in time order, several per append.
	if unknown > 0 {
		r := rand.New(rand.NewPCG(cfg.Seed, math.MaxUint32))
		times := make([]time.Time, unknown)
		for i := range times {
			times[i] = from.Add(time.Duration(r.Int64N(int64(seedHistory))))
		}
		sort.Slice(times, func(a, b int) bool { return times[a].Before(times[b]) })
		for i := 0; i < len(times); {
			n := min(1+r.IntN(32), len(times)-i)
			evs := make([]seedEvent, n)
			for j := range n {
				at := times[i+j]
				c := seedPickCountry(r)
				email := fmt.Sprintf("%s.%s%d@%s", strings.ToLower(seedFirstNames[r.IntN(len(seedFirstNames))]),
					strings.ToLower(seedLastNames[r.IntN(len(seedLastNames))]), r.IntN(10000), seedEmailDomains[r.IntN(len(seedEmailDomains))])
				evs[j] = seedEvent{id: seedID(r, at),
					ev: domain.LoginFailed{Reason: reasons.LoginFailedUnknownAccount, Stage: domain.StagePassword,
						Method: domain.MethodPassword, AttemptedEmail: email, At: at},
					md: domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount}, IP: seedIP(r, c),
						UserAgent: seedUserAgents[r.IntN(len(seedUserAgents))].ua, CorrelationID: seedID(r, at)}}
			}
			add(times[i+n-1], domain.SigninStream, expect.Any, evs...)
			i += n
		}
		p.streams++
	}
	sort.SliceStable(p.appends, func(a, b int) bool { return p.appends[a].at.Before(p.appends[b].at) })
	return p, nil
}

// planAccount plans one account's history within budget events.
func planAccount(p *seedPlan, add func(time.Time, string, expect.Version, ...seedEvent), r *rand.Rand,
	idx, budget int, from, until time.Time, sh *seedShared) {
	home := seedPickCountry(r)
	homeIPs := []string{seedIP(r, home), seedIP(r, home)}
	var devices []int
	for range 1 + r.IntN(3) {
		devices = append(devices, r.IntN(len(seedUserAgents)))
	}
	first, last := seedFirstNames[r.IntN(len(seedFirstNames))], seedLastNames[r.IntN(len(seedLastNames))]
	email := fmt.Sprintf("%s.%s.%d@%s", strings.ToLower(first), strings.ToLower(last), idx, seedEmailDomains[r.IntN(len(seedEmailDomains))])
	// Registered in the first two thirds of the history, earlier more likely.
	reg := from.Add(time.Duration(r.Float64() * r.Float64() * float64(seedHistory*2/3)))
	id := seedID(r, reg)
	stream := domain.AccountStream(id)
	version := uint64(0)
	meta := func(at time.Time, ip, ua, client string) domain.Metadata {
		return domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: id}, SubjectAccountID: id,
			IP: ip, UserAgent: ua, ClientID: client, CorrelationID: seedID(r, at)}
	}
	where := func() (ip, ua, client string) {
		if r.IntN(10) < 8 {
			ip = homeIPs[r.IntN(len(homeIPs))]
		} else {
			ip = seedIP(r, seedPickCountry(r)) // travelling
		}
		d := seedUserAgents[devices[r.IntN(len(devices))]]
		if d.api {
			client = sh.clientIDs[r.IntN(len(sh.clientIDs))]
		}
		return ip, d.ua, client
	}
	ip, ua, _ := where()
	md := meta(reg, ip, ua, "")
	add(reg, domain.EmailStream(sh.keyring.Index("email", email)), expect.NoStream, seedEvent{id: seedID(r, reg), ev: domain.EmailReserved{AccountID: id, At: reg}, md: md})
	at := reg.Add(3 * time.Millisecond)
	add(at, stream, expect.NoStream, seedEvent{id: seedID(r, at), md: md,
		ev: domain.AccountRegistered{AccountID: id, Email: email, FirstName: first, LastName: last, PasswordHash: sh.passwordHash, At: at}})
	version = 1
	p.streams += 2
	budget -= 2

	// Actions: kinds first (until the budget is used), then sorted times.
	type action struct {
		kind     int
		accesses int
	}
	var acts []action
	totp := false
	for used := 0; used < budget; {
		left := budget - used
		n := r.IntN(100)
		switch {
		case n < 3 && left >= 3 && !totp:
			acts = append(acts, action{kind: actTOTP})
			used += 3 // added, confirmed, backup codes
			totp = true
		case n < 5 && totp:
			acts = append(acts, action{kind: actBackup})
			used++
		case n < 7:
			acts = append(acts, action{kind: actPassword})
			used++
		case n < 10:
			acts = append(acts, action{kind: actProfile})
			used++
		case n < 28 || left < 3:
			acts = append(acts, action{kind: actFailed})
			used++
		default:
			// LoginSucceeded + SessionStarted, (TOTPCodeAccepted), accesses, an end.
			need := 3
			if totp {
				need++
			}
			if left < need {
				acts = append(acts, action{kind: actFailed})
				used++
				continue
			}
			k := min(r.IntN(8), left-need)
			acts = append(acts, action{kind: actSignIn, accesses: k})
			used += need + k
		}
	}
	span := until.Sub(at) - time.Hour
	times := make([]time.Duration, len(acts))
	for i := range times {
		times[i] = time.Minute + time.Duration(r.Int64N(int64(span)))
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	totpDevice, totpConfirmed := "", false
	acctAt := at // time of the account stream's last event: its appends must sort in order
	var step int64
	for i, a := range acts {
		at := reg.Add(3 * time.Millisecond).Add(times[i])
		if !at.After(acctAt) {
			at = acctAt.Add(time.Millisecond) // after the previous action's last account event
		}
		ip, ua, client := where()
		md := meta(at, ip, ua, client)
		one := func(ev domain.Event, expected expect.Version) {
			add(at, stream, expected, seedEvent{id: seedID(r, at), ev: ev, md: md})
			version++
			acctAt = at
		}
		switch a.kind {
		case actTOTP:
			totpDevice = seedID(r, at)
			one(domain.TOTPDeviceAdded{DeviceID: totpDevice, Name: "Authenticator", Secret: sh.sealed, At: at}, expect.Exact(version))
			at = at.Add(time.Duration(20+r.IntN(60)) * time.Second)
			step = at.Unix() / 30
			md.CorrelationID = seedID(r, at)
			one(domain.TOTPDeviceConfirmed{DeviceID: totpDevice, Step: step, At: at}, expect.Exact(version))
			totpConfirmed = true
			at = at.Add(time.Duration(5+r.IntN(30)) * time.Second)
			md.CorrelationID = seedID(r, at)
			one(seedBackupCodes(r, at), expect.Exact(version))
		case actBackup:
			one(seedBackupCodes(r, at), expect.Exact(version))
		case actPassword:
			one(domain.PasswordChanged{PasswordHash: sh.passwordHash, At: at}, expect.Exact(version))
		case actProfile:
			c := seedCountries[r.IntN(len(seedCountries))]
			one(domain.ProfileUpdated{Profile: domain.Profile{
				Title:     []string{"", "Engineer", "Manager", "Analyst", "Director"}[r.IntN(5)],
				Telephone: fmt.Sprintf("+44 20 7946 %04d", r.IntN(10000)),
				City:      []string{"London", "Berlin", "Paris", "Tokyo", "Toronto", "Madrid"}[r.IntN(6)],
				Country:   c.code,
				Locale:    []string{"en-GB", "en-US", "de-DE", "fr-FR", "ja-JP", "es-ES"}[r.IntN(6)],
			}, At: at}, expect.Exact(version))
		case actFailed:
			ev := domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StagePassword,
				Method: domain.MethodPassword, At: at}
			if totpConfirmed && r.IntN(4) == 0 {
				ev = domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor, Stage: domain.StageSecondFactor,
					Method: domain.MethodTOTP, At: at}
			}
			one(ev, expect.Any)
		case actSignIn:
			method, amr, aal := domain.MethodPassword, []string{domain.AMRPassword}, domain.AAL1
			if totpConfirmed {
				method, amr, aal = domain.MethodTOTP, []string{domain.AMRPassword, domain.AMROTP}, domain.AAL2
				if s := at.Unix() / 30; s > step {
					step = s
				} else {
					step++
				}
				one(domain.TOTPCodeAccepted{DeviceID: totpDevice, Step: step, Purpose: "login", At: at}, expect.Exact(version))
				at = at.Add(time.Millisecond)
			}
			sid := seedID(r, at)
			sstream := domain.SessionStream(sid)
			var tok [32]byte
			seedReader{r}.Read(tok[:])
			th := credential.HashSessionToken(hex.EncodeToString(tok[:]))
			lifetime, idle := 24*time.Hour, 2*time.Hour
			add(at, sstream, expect.NoStream,
				seedEvent{id: seedID(r, at), md: md, ev: domain.LoginSucceeded{AccountID: id, SessionID: sid, Method: method,
					AMR: amr, AAL: aal, ClientID: client, At: at}},
				seedEvent{id: seedID(r, at), md: md, ev: domain.SessionStarted{SessionID: sid, AccountID: id,
					TokenHash: hex.EncodeToString(th[:]), ClientID: client, AMR: amr, AAL: aal, StartedAt: at,
					ExpiresAt: at.Add(lifetime), IdleTimeoutSeconds: int64(idle / time.Second)}})
			p.sessions++
			p.streams++
			sv := uint64(2)
			last := at
			access := domain.Metadata{Actor: md.Actor, SubjectAccountID: id, ClientID: client}
			for range a.accesses {
				next := last.Add(time.Duration(1+r.IntN(90)) * time.Minute)
				if next.After(until) {
					break
				}
				last = next
				access.CorrelationID = seedID(r, last)
				add(last, sstream, expect.Exact(sv), seedEvent{id: seedID(r, last), md: access, ev: domain.SessionAccessed{At: last}})
				sv++
			}
			// The end: a logout by the user, or an expiry noticed by the sweeper; a session
			// whose end is still to come stays active.
			if r.IntN(2) == 0 {
				end := last.Add(time.Duration(1+r.IntN(60)) * time.Minute)
				if end.After(until) {
					continue
				}
				lmd := md
				lmd.CorrelationID = seedID(r, end)
				add(end, sstream, expect.Exact(sv), seedEvent{id: seedID(r, end), md: lmd,
					ev: domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: end}})
			} else {
				end, reason := last.Add(idle), reasons.ExpiredIdle
				if end.After(at.Add(lifetime)) {
					end, reason = at.Add(lifetime), reasons.ExpiredLifetime
				}
				end = end.Add(time.Duration(r.IntN(60)) * time.Second) // the sweeper's period
				if end.After(until) {
					continue
				}
				add(end, sstream, expect.Exact(sv), seedEvent{id: seedID(r, end),
					md: domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: id, ClientID: client},
					ev: domain.SessionExpired{Reason: reason, At: end}})
			}
		}
	}
}

// seedBackupCodes is a fresh set of backup code hashes (as domain hashes them: hex SHA-256 of
// "<set id>:<normalised code>").
func seedBackupCodes(r *rand.Rand, at time.Time) domain.BackupCodesGenerated {
	set := seedID(r, at)
	hashes := make([]string, credential.BackupCodeCount)
	for i := range hashes {
		code := fmt.Sprintf("%05d%05d", r.IntN(100000), r.IntN(100000))
		sum := sha256.Sum256([]byte(set + ":" + code))
		hashes[i] = hex.EncodeToString(sum[:])
	}
	return domain.BackupCodesGenerated{SetID: set, CodeHashes: hashes, At: at}
}
