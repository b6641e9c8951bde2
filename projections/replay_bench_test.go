package projections_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/projections"
)

// BenchmarkReplay measures the rebuild fast path (Replay of every built-in projection, with
// GeoIP) over a synthetic log of sign-ins, session use, sign-outs and failures; it reports
// events/s.
func BenchmarkReplay(b *testing.B) {
	const accounts, sessionsPerAccount = 500, 20
	dir := b.TempDir()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	ips := []string{ipLondon, ipGoogle, ipSweden, ipTelstra, ipPrivate}
	uas := []string{uaChromeMac, uaSafariIOS, uaFirefoxWin, uaCurl}
	enc := func(ev domain.Event, md domain.Metadata) domain.EventData {
		v, _ := domain.Catalog().CurrentVersion(domain.EventTypeOf(ev))
		d, err := domain.NewEventData(domain.EventTypeOf(ev), v, ev, md)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	t0 := testStart
	for a := range accounts {
		id := fmt.Sprintf("acc-%d", a)
		md := domain.Metadata{Actor: self(id), SubjectAccountID: id, IP: ips[a%len(ips)], UserAgent: uas[a%len(uas)], ClientID: domain.PortalClientID}
		acct := []domain.EventData{enc(domain.AccountRegistered{AccountID: id, Email: id + "@example.com", PasswordHash: "h", At: t0}, md)}
		for i := range 4 {
			acct = append(acct, enc(domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StagePassword,
				Method: domain.MethodPassword, At: t0.Add(time.Duration(i) * time.Second)}, md))
		}
		if _, err := store.Append(ctx, domain.AccountStream(id), eventstore.Any, acct); err != nil {
			b.Fatal(err)
		}
		for s := range sessionsPerAccount {
			sid := fmt.Sprintf("%s-s%d", id, s)
			smd := md
			smd.IP, smd.UserAgent = ips[(a+s)%len(ips)], uas[(a+s)%len(uas)]
			at := t0.Add(time.Duration(s) * time.Minute)
			evs := []domain.EventData{
				enc(domain.LoginSucceeded{AccountID: id, SessionID: sid, Method: domain.MethodPassword, AMR: []string{"pwd"}, AAL: domain.AAL1, At: at}, smd),
				enc(started(sid, id, at), smd),
				enc(domain.SessionAccessed{At: at.Add(time.Minute)}, smd),
				enc(domain.SessionAccessed{At: at.Add(2 * time.Minute)}, smd),
				enc(domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: at.Add(3 * time.Minute)}, smd),
			}
			if _, err := store.Append(ctx, domain.SessionStream(sid), eventstore.Any, evs); err != nil {
				b.Fatal(err)
			}
		}
	}
	head, _ := store.Head(ctx)
	geo := writeGeoDBs(b, dir)
	b.ResetTimer()
	for i := range b.N {
		db, err := projections.Open(projections.Config{Path: filepath.Join(dir, fmt.Sprintf("p%d.db", i)), Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := projections.Replay(ctx, db, store, projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(head)/time.Since(start).Seconds(), "events/s")
		db.Close()
	}
}
