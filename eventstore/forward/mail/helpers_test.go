package mail_test

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	netmail "net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sealed/keystore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

var serverKey = bytes.Repeat([]byte("k"), 32)

const (
	ipLondon  = "81.2.69.142"
	ipSaoPaul = "200.160.2.3"
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	publicURL = "https://id.example.com"
)

// openLog opens a real sealed log in dir (SQLite events, SQLite key store), as serve does.
func openLog(t testing.TB, dir string) *sealed.Store {
	t.Helper()
	inner, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keystore.OpenSQLite(filepath.Join(dir, "keys.db"), serverKey)
	if err != nil {
		inner.Close()
		t.Fatal(err)
	}
	h, err := sealed.NewHasher(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealed.New(inner, sealed.Config{Keys: keys, Personal: sealed.RegistryPersonal, Owner: sealed.DefaultOwner(h, "attempted_email")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type fixture struct {
	t       testing.TB
	dir     string
	log     *sealed.Store
	keyring *credential.Keyring
	smtp    *mailtest.Server
	geo     *geoip.Resolver
	logs    *testkit.SyncBuffer

	reg    *prometheus.Registry
	outbox *mail.Outbox
	cancel context.CancelFunc
	done   chan error
}

func newFixture(t testing.TB, smtpCfg mailtest.Config) *fixture {
	t.Helper()
	dir := t.TempDir()
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: serverKey})
	if err != nil {
		t.Fatal(err)
	}
	city := filepath.Join(dir, "city.mmdb")
	geoiptest.WriteCityDB(t, city, []geoiptest.CityEntry{
		{Network: "81.2.69.0/24", City: "London", Country: "United Kingdom", CountryCode: "GB", Lat: 51.5, Lon: -0.1},
		{Network: "200.160.0.0/20", City: "São Paulo", Country: "Brazil", CountryCode: "BR", Lat: -23.5, Lon: -46.6},
	})
	geo, err := geoip.Open(geoip.Config{CityDB: city, ReloadInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { geo.Close() })
	return &fixture{t: t, dir: dir, log: openLog(t, dir), keyring: kr, smtp: mailtest.Start(t, smtpCfg), geo: geo, logs: &testkit.SyncBuffer{}}
}

// start runs an outbox sending to the fixture's SMTP server (or with sender, when given).
func (f *fixture) start(sender mail.Sender) {
	f.t.Helper()
	if sender == nil {
		cfg, err := mail.ParseSMTPURL(f.smtp.URL())
		if err != nil {
			f.t.Fatal(err)
		}
		s, err := mail.NewSMTPSender(cfg, from(f.t))
		if err != nil {
			f.t.Fatal(err)
		}
		sender = s
	}
	u, _ := url.Parse(publicURL)
	f.reg = prometheus.NewRegistry()
	o, err := mail.New(context.Background(), mail.Config{
		Log: f.log, Sender: sender, Keyring: f.keyring, PublicURL: u, CheckpointPath: filepath.Join(f.dir, "mail.db"),
		GeoIP: f.geo, Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Registerer: f.reg,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
		NackBackoff: 20 * time.Millisecond, MaxNackBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.outbox, f.cancel, f.done = o, cancel, make(chan error, 1)
	go func() { f.done <- o.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

// stop is a clean stop: Run returns, Close closes.
func (f *fixture) stop() {
	if f.outbox == nil {
		return
	}
	// A stop while the follower is still subscribing is a failed start, not a clean stop.
	testwait.Recv(f.t, 10*time.Second, "the outbox to run", f.outbox.Running())
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("outbox Run: %v", err)
	}
	if err := f.outbox.Close(); err != nil {
		f.t.Errorf("outbox Close: %v", err)
	}
	f.outbox = nil
}

func from(t testing.TB) *netmail.Address {
	a, err := mail.ParseFrom("", publicURL)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// md is the metadata of a request from London in Firefox on Linux.
func md(accountID string) domain.Metadata {
	return domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: accountID}, SubjectAccountID: accountID,
		IP: ipLondon, UserAgent: uaFirefox}
}

// appendTo appends events to stream as a command would, returning the last envelope.
func (f *fixture) appendTo(stream string, m domain.Metadata, events ...domain.Event) domain.Envelope {
	f.t.Helper()
	var data []domain.EventData
	for _, e := range events {
		d, err := domain.EncodeEvent(e, m)
		if err != nil {
			f.t.Fatal(err)
		}
		data = append(data, d)
	}
	res, err := f.log.Append(context.Background(), stream, eventstore.Any, data)
	if err != nil {
		f.t.Fatal(err)
	}
	evs, err := f.log.ReadAll(context.Background(), res.LastPosition-1, 1)
	if err != nil || len(evs) != 1 {
		f.t.Fatalf("read back: %v %d", err, len(evs))
	}
	return evs[0]
}

// account registers an account (with a locale when given) and returns its id.
func (f *fixture) account(email, first, locale string) string {
	f.t.Helper()
	id := domain.NewID()
	now := time.Now().UTC()
	evs := []domain.Event{domain.AccountRegistered{AccountID: id, Email: email, FirstName: first, LastName: "Tester", PasswordHash: "$argon2id$x", At: now}}
	if locale != "" {
		evs = append(evs, domain.ProfileUpdated{Profile: domain.Profile{Locale: locale}, At: now})
	}
	f.appendTo(domain.AccountStream(id), md(id), evs...)
	return id
}

// waitMessages waits until the SMTP server holds n messages.
func (f *fixture) waitMessages(n int) []mailtest.Message {
	f.t.Helper()
	var got []mailtest.Message
	testwait.Until(f.t, 10*time.Second, "the SMTP server to receive the mail", func() (bool, string) {
		got = f.smtp.Messages()
		return len(got) >= n, strings.Join(kinds(got), ",")
	})
	return got
}

func kinds(ms []mailtest.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Header.Get(mail.HeaderKind))
	}
	return out
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

var mimeDecoder = mime.WordDecoder{}
