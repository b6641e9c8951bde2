package projections_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

// lagProbe is a projection that records, for each event, when its handler saw it.
type lagProbe struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (p *lagProbe) Name() string     { return "lag_probe" }
func (p *lagProbe) Schema() []string { return nil }
func (p *lagProbe) Apply(_ context.Context, _ *sql.Tx, ev domain.Envelope) error {
	now := time.Now()
	p.mu.Lock()
	p.seen[ev.ID] = now
	p.mu.Unlock()
	return nil
}

// BenchmarkSubscriptionLag appends one event at a time at a steady rate (5,000 events/s, open
// loop: each append starts at its scheduled time whatever the latency) for two seconds per op
// and measures, per event, the time from calling Append to the projection handler running
// (through the store subscription, the Watermill bridge and router), and to the batch holding
// it being committed (visible to queries).
func BenchmarkSubscriptionLag(b *testing.B) {
	probe := &lagProbe{seen: map[string]time.Time{}}
	r, store := lagRunner(b, probe)
	var handlerLag []time.Duration
	visible := openLoopLag(b, r, store, 5000, 2, func(i int) (string, domain.EventData) {
		ev, _ := domain.NewEventData("SessionAccessed", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		return fmt.Sprintf("session-lag-%d", i%50), ev
	}, func(ids []string, sent []time.Time) {
		probe.mu.Lock()
		defer probe.mu.Unlock()
		for i, id := range ids {
			seen, ok := probe.seen[id]
			if !ok {
				b.Fatalf("event %d never reached the handler", i)
			}
			handlerLag = append(handlerLag, seen.Sub(sent[i]))
		}
	})
	reportLag(b, "handler", handlerLag)
	reportLag(b, "visible", visible)
}

// BenchmarkReadModelLag appends a realistic mix of session events (sign-in, session start,
// use, sign-out, from several countries and user agents) at 2,000 events/s, open loop, for
// three seconds per op, to the built-in projections with GeoIP, and measures the time from
// calling Append to every read model (sessions, activity, security, streams) having committed
// the event: visible to /me/sessions and /me/activity.
func BenchmarkReadModelLag(b *testing.B) {
	geo := writeGeoDBs(b, b.TempDir())
	r, store := lagRunner(b, projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...)
	ips := []string{ipLondon, ipGoogle, ipSweden, ipTelstra, ipPrivate}
	uas := []string{uaChromeMac, uaSafariIOS, uaFirefoxWin, uaCurl}
	const inFlight = 500 // accounts, each with one session in flight
	var last uint64
	for a := range inFlight {
		id := fmt.Sprintf("acc-%d", a)
		md := domain.Metadata{Actor: self(id), SubjectAccountID: id, IP: ipLondon, UserAgent: uaChromeMac}
		res, err := store.Append(context.Background(), domain.AccountStream(id), eventstore.NoStream,
			[]domain.EventData{encode(b, domain.AccountRegistered{AccountID: id, Email: id + "@example.com", PasswordHash: "h", At: time.Now().UTC()}, md)})
		if err != nil {
			b.Fatal(err)
		}
		last = res.LastPosition
	}
	if err := r.WaitFor(context.Background(), last); err != nil {
		b.Fatal(err)
	}
	var round int
	visible := openLoopLag(b, r, store, 2000, 3, func(i int) (string, domain.EventData) {
		// The four events of one session are inFlight events (250 ms) apart, so the
		// concurrent appends never reorder them.
		sess, step := i%inFlight+inFlight*(i/(4*inFlight)), (i/inFlight)%4
		id := fmt.Sprintf("acc-%d", i%inFlight)
		sid := fmt.Sprintf("r%d-s%d", round, sess)
		md := domain.Metadata{Actor: self(id), SubjectAccountID: id, IP: ips[sess%len(ips)], UserAgent: uas[sess%len(uas)], ClientID: domain.PortalClientID}
		at := time.Now().UTC()
		var ev domain.Event
		switch step {
		case 0:
			ev = domain.LoginSucceeded{AccountID: id, SessionID: sid, Method: domain.MethodPassword, AMR: []string{"pwd"}, AAL: domain.AAL1, At: at}
		case 1:
			ev = started(sid, id, at)
		case 2:
			ev = domain.SessionAccessed{At: at}
		default:
			ev = domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: at}
		}
		return domain.SessionStream(sid), encode(b, ev, md)
	}, func([]string, []time.Time) { round++ })
	reportLag(b, "visible", visible)
}

// encode is domain.NewEventData of ev at its current schema version.
func encode(b *testing.B, ev domain.Event, md domain.Metadata) domain.EventData {
	v, _ := domain.Catalog().CurrentVersion(domain.EventTypeOf(ev))
	d, err := domain.NewEventData(domain.EventTypeOf(ev), v, ev, md)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// lagRunner runs ps on a fresh store and read-model file until the benchmark ends.
func lagRunner(b *testing.B, ps ...projections.Projection) (*runner.Runner, *sqlite.Store) {
	dir := b.TempDir()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	db, err := projections.Open(projections.Config{Path: filepath.Join(dir, "projections.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	r, err := runner.New(runner.Config{DB: db, Log: store, Projections: ps, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	<-r.Running()
	b.Cleanup(func() { cancel(); <-done; r.Close() })
	return r, store
}

// openLoopLag appends rate events/s for seconds per op, each append starting at its
// scheduled time whatever the latency of the others (event i made by next), and returns,
// over all ops, the time from calling Append to r having committed the event. After each op,
// check gets the op's event ids and send times.
func openLoopLag(b *testing.B, r *runner.Runner, store *sqlite.Store, rate, seconds int,
	next func(i int) (string, domain.EventData), check func(ids []string, sent []time.Time)) []time.Duration {
	ctx := context.Background()
	var lags []time.Duration
	b.ResetTimer()
	for range b.N {
		total := rate * seconds
		sent := make([]time.Time, total)
		ids := make([]string, total)
		committed := make([]time.Duration, total)
		interval := time.Second / time.Duration(rate)
		var wg, visible sync.WaitGroup
		start := time.Now()
		for i := range total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			stream, ev := next(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i] = ev.ID
				sent[i] = time.Now()
				res, err := store.Append(ctx, stream, eventstore.Any, []domain.EventData{ev})
				if err != nil {
					b.Error(err)
					return
				}
				visible.Add(1)
				go func() {
					defer visible.Done()
					ctx, cancel := context.WithTimeout(ctx, testwait.Deadline(10*time.Second))
					defer cancel()
					if err := r.WaitFor(ctx, res.LastPosition); err != nil {
						b.Error(err)
						return
					}
					committed[i] = time.Since(sent[i])
				}()
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "appended-events/s")
		visible.Wait()
		check(ids, sent)
		lags = append(lags, committed...)
	}
	b.StopTimer()
	return lags
}

// reportLag reports the median and 99th percentile of lags as <name>-p50-ms and -p99-ms.
func reportLag(b *testing.B, name string, lags []time.Duration) {
	slices.Sort(lags)
	pct := func(p int) float64 { return float64(lags[len(lags)*p/100].Microseconds()) / 1000 }
	b.ReportMetric(pct(50), name+"-p50-ms")
	b.ReportMetric(pct(99), name+"-p99-ms")
}
