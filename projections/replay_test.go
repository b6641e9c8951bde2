package projections_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/projections"
)

// history writes a realistic history through the real service: accounts, sign-ins from
// several places and devices, through the portal and a client, failures of every kind and a
// throttled account, TOTP enrollment, second-factor and backup-code sign-ins, session use,
// re-authentication, sign-outs of every kind, expiries and a role.
type history struct {
	t     *testing.T
	svc   *command.Service
	clock *testkit.Clock
	ctx   context.Context
}

func (h *history) rm(ip, ua string) command.RequestMeta {
	return command.RequestMeta{IP: ip, UserAgent: ua}
}

func (h *history) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *history) register(email string) string {
	h.t.Helper()
	res, err := h.svc.Register(h.ctx, command.Registration{Email: email, Password: password, FirstName: "Test", LastName: "Person"},
		h.rm(ipLondon, uaChromeMac))
	h.must(err)
	return res.AccountID
}

func (h *history) login(email, client string, rm command.RequestMeta) domain.Session {
	h.t.Helper()
	res, err := h.svc.Login(h.ctx, email, password, client, rm)
	h.must(err)
	if res.Status != command.StatusAuthenticated {
		h.t.Fatalf("login %s: %s", email, res.Status)
	}
	return res.Authenticated.Session
}

func (h *history) fail(email string, rm command.RequestMeta) error {
	_, err := h.svc.Login(h.ctx, email, "not-the-password-1", "", rm)
	return err
}

// first writes the first part of the history; second what comes after a replay.
func (h *history) first() {
	client, _, err := h.svc.RegisterClient(h.ctx, "Acme CRM", command.RequestMeta{})
	h.must(err)
	ann, bob := h.register("ann@example.com"), h.register("bob@example.com")
	h.register("cat@example.com")
	_ = bob

	annMac := h.login("ann@example.com", domain.PortalClientID, h.rm(ipLondon, uaChromeMac))
	annPhone := h.login("ann@example.com", client.ID, h.rm(ipGoogle, uaSafariIOS))
	bobPC := h.login("bob@example.com", "", h.rm(ipSweden, uaFirefoxWin))
	bobAPI := h.login("bob@example.com", "", h.rm(ipPrivate, uaCurl))
	catSess := h.login("cat@example.com", domain.PortalClientID, h.rm(ipTelstra, uaChromeMac))

	// Failures: wrong passwords, an unknown email, a throttled account.
	for range 3 {
		if err := h.fail("bob@example.com", h.rm(ipSweden, uaFirefoxWin)); !errors.Is(err, domain.ErrInvalidCredentials) {
			h.t.Fatalf("wrong password: %v", err)
		}
	}
	if err := h.fail("nobody@example.com", h.rm(ipTelstra, uaCurl)); !errors.Is(err, domain.ErrInvalidCredentials) {
		h.t.Fatalf("unknown email: %v", err)
	}
	throttled := false
	for range 12 {
		var te *throttle.Error
		if err := h.fail("cat@example.com", h.rm(ipGoogle, uaCurl)); errors.As(err, &te) {
			throttled = true
			break
		}
	}
	if !throttled {
		h.t.Fatal("cat was never throttled")
	}

	// Ann enrolls an authenticator app and signs in with it and with a backup code.
	enr, err := h.svc.AddTOTPDevice(h.ctx, annMac, "Phone", h.rm(ipLondon, uaChromeMac))
	h.must(err)
	conf, err := h.svc.ConfirmTOTPDevice(h.ctx, annMac, enr.DeviceID, totpCode(h.t, enr.Secret, h.clock.Now()), h.rm(ipLondon, uaChromeMac))
	h.must(err)
	h.clock.Advance(30 * time.Second)
	res, err := h.svc.Login(h.ctx, "ann@example.com", password, domain.PortalClientID, h.rm(ipSweden, uaFirefoxWin))
	h.must(err)
	if _, err := h.svc.SecondFactor(h.ctx, res.SecondFactor.Ticket, domain.MethodTOTP, "000000", h.rm(ipSweden, uaFirefoxWin)); !errors.Is(err, domain.ErrInvalidCode) {
		h.t.Fatalf("wrong code: %v", err)
	}
	_, err = h.svc.SecondFactor(h.ctx, res.SecondFactor.Ticket, domain.MethodTOTP, totpCode(h.t, enr.Secret, h.clock.Now()), h.rm(ipSweden, uaFirefoxWin))
	h.must(err)
	res, err = h.svc.Login(h.ctx, "ann@example.com", password, "", h.rm(ipGoogle, uaSafariIOS))
	h.must(err)
	_, err = h.svc.SecondFactor(h.ctx, res.SecondFactor.Ticket, domain.MethodBackupCode, conf.BackupCodes[3], h.rm(ipGoogle, uaSafariIOS))
	h.must(err)
	_, err = h.svc.RegenerateBackupCodes(h.ctx, annMac, h.rm(ipLondon, uaChromeMac))
	h.must(err)

	// Sessions are used, re-authenticated and signed out in every way.
	h.clock.Advance(2 * time.Minute)
	for _, s := range []domain.Session{annMac, annPhone, bobPC, catSess} {
		_, err := h.svc.Touch(h.ctx, s.ID)
		h.must(err)
	}
	_, err = h.svc.Reauth(h.ctx, annMac, command.ReauthInput{Password: password}, h.rm(ipLondon, uaChromeMac))
	h.must(err)
	if _, err := h.svc.Reauth(h.ctx, annMac, command.ReauthInput{Password: "wrong-password-1"}, h.rm(ipLondon, uaChromeMac)); !errors.Is(err, domain.ErrInvalidCredentials) {
		h.t.Fatalf("wrong reauth: %v", err)
	}
	_, err = h.svc.SignOut(h.ctx, annMac, annPhone.ID, h.rm(ipLondon, uaChromeMac))
	h.must(err)
	_, err = h.svc.SignOutOthers(h.ctx, bobAPI, h.rm(ipPrivate, uaCurl))
	h.must(err)
	_, err = h.svc.AdminSignOut(h.ctx, catSess.ID, command.RequestMeta{IP: ipGoogle, UserAgent: uaCurl, Actor: &domain.Actor{Type: domain.ActorAdmin, ID: ann}})
	h.must(err)
	_, err = h.svc.GrantRole(h.ctx, ann, domain.RoleAuditor, command.RequestMeta{})
	h.must(err)
	_, err = h.svc.ChangePassword(h.ctx, annMac, password, password+"-2", true, h.rm(ipLondon, uaChromeMac))
	h.must(err)
	_, err = h.svc.ChangePassword(h.ctx, annMac, password+"-2", password, false, h.rm(ipLondon, uaChromeMac))
	h.must(err)
	_, err = h.svc.Logout(h.ctx, bobAPI, h.rm(ipPrivate, uaCurl))
	h.must(err)

	// Three hours later the rest has expired; new sign-ins follow.
	h.clock.Advance(3 * time.Hour)
	sw, err := h.svc.Sweep(h.ctx, h.clock.Now())
	h.must(err)
	if len(sw.Expired) == 0 {
		h.t.Fatal("nothing expired")
	}
	h.login("bob@example.com", client.ID, h.rm(ipGoogle, uaSafariIOS))
	h.login("cat@example.com", "", h.rm(ipLondon, uaFirefoxWin))
}

func (h *history) second() {
	h.clock.Advance(time.Hour) // cat's throttling is long over
	s := h.login("cat@example.com", domain.PortalClientID, h.rm(ipSweden, uaChromeMac))
	_, err := h.svc.ChangeName(h.ctx, s, "Cat", "Stevens", h.rm(ipSweden, uaChromeMac))
	h.must(err)
	_ = h.fail("ann@example.com", h.rm(ipTelstra, uaCurl))
}

// TestRebuildEqualsLiveProcessing applies a realistic history live through the runner and
// by Replay into a fresh database, and compares every table row by row; then more history
// is replayed on top (resuming from the checkpoints) and compared again.
func TestRebuildEqualsLiveProcessing(t *testing.T) {
	clock := newTestClock()
	e := newClockEnv(t, clock)
	geo := writeGeoDBs(t, t.TempDir())
	svc := newService(t, e, clock)
	ctx := context.Background()
	r, _ := e.start(projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...)
	h := &history{t: t, svc: svc, clock: clock, ctx: ctx}
	h.first()
	head, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(r, head)

	fresh, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "rebuilt.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	var progress []projections.ReplayProgress
	pos, err := projections.ReplayWith(ctx, projections.ReplayConfig{DB: fresh, Log: e.store,
		Projections: projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo}), BatchSize: 16,
		Progress: func(p projections.ReplayProgress) { progress = append(progress, p) }})
	if err != nil || pos != head {
		t.Fatalf("Replay = %d, %v; want %d", pos, err, head)
	}
	if len(progress) < 2 || progress[len(progress)-1].Position != head || progress[len(progress)-1].Events != int(head) {
		t.Fatalf("progress %+v", progress)
	}
	compareDBs(t, e.db, fresh)

	// More history: the live runner follows it, a second replay resumes from its
	// checkpoints, and a third finds nothing to do.
	h.second()
	head, _ = e.store.Head(ctx)
	e.waitFor(r, head)
	if pos, err := projections.Replay(ctx, fresh, e.store, projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...); err != nil || pos != head {
		t.Fatalf("second Replay = %d, %v; want %d", pos, err, head)
	}
	if pos, err := projections.Replay(ctx, fresh, e.store, projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...); err != nil || pos != head {
		t.Fatalf("third Replay = %d, %v; want %d", pos, err, head)
	}
	compareDBs(t, e.db, fresh)
}

// compareDBs compares every table of the two read-model databases row by row (checkpoints
// by position only), and checks that the history left something in each projection.
func compareDBs(t *testing.T, live, rebuilt *projections.DB) {
	t.Helper()
	compareTables(t, live, rebuilt)
	for _, table := range []string{"streams", "sessions", "sessions_clients", "activity", "activity_clients", "activity_sessions", "security_state"} {
		if n := len(dump(t, live, `SELECT * FROM `+table)); n == 0 {
			t.Errorf("table %s is empty: the history does not exercise it", table)
		}
	}
	// The activity log is geo-enriched and holds the kinds of rows the history made.
	rows := dump(t, live, `SELECT DISTINCT type || ' ' || outcome || ' ' || country_code || ' ' || access_type FROM activity`)
	for _, want := range []string{"LoginSucceeded success GB browser", "LoginSucceeded success US browser", "LoginFailed failure SE browser",
		"LoginFailed failure  api", "SessionExpired success GB browser", "SessionSignedOut success US api", "TOTPCodeAccepted success SE browser",
		"BackupCodeUsed success US browser"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no activity row %q in %v", want, rows)
		}
	}
	// The sign-in history is located too, with the database's accuracy radius.
	rows = dump(t, live, `SELECT DISTINCT kind || ' ' || country_code || ' ' || accuracy_km FROM signin_history`)
	for _, want := range []string{"signin GB 20", "signin US 1000"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no sign-in history row %q in %v", want, rows)
		}
	}
}

// compareTables compares every table of the two read-model databases row by row
// (checkpoints by position only).
func compareTables(t *testing.T, live, rebuilt *projections.DB) {
	t.Helper()
	tables := tableNames(t, live)
	if got := tableNames(t, rebuilt); !slices.Equal(got, tables) {
		t.Fatalf("tables: live %v, rebuilt %v", tables, got)
	}
	for _, table := range tables {
		q := `SELECT * FROM ` + table
		if table == "checkpoints" {
			q = `SELECT name, position FROM checkpoints`
		}
		a, b := dump(t, live, q), dump(t, rebuilt, q)
		if !slices.Equal(a, b) {
			t.Errorf("table %s differs:\nlive    %d rows %s\nrebuilt %d rows %s", table, len(a), strings.Join(a, "\n\t"), len(b), strings.Join(b, "\n\t"))
		}
	}
}

func tableNames(t *testing.T, db *projections.DB) []string {
	t.Helper()
	return dump(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
}

// dump returns the rows of q, each as one string, sorted.
func dump(t *testing.T, db *projections.DB, q string) []string {
	t.Helper()
	rows, err := db.Read().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprintf("%v", v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestParallelRebuildEqualsLiveProcessing builds the read models with Rebuild (every
// projection in a goroutine and a file of its own, pages decoded once, places cached, the
// part files copied in at the end) from a history applied live through the runner, and
// compares every table row by row with the live ones; small pages make many batches.
func TestParallelRebuildEqualsLiveProcessing(t *testing.T) {
	clock := newTestClock()
	e := newClockEnv(t, clock)
	geo := writeGeoDBs(t, t.TempDir())
	svc := newService(t, e, clock)
	ctx := context.Background()
	r, _ := e.start(projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...)
	h := &history{t: t, svc: svc, clock: clock, ctx: ctx}
	h.first()
	h.second()
	head, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(r, head)

	// Batches of 7 events, carrying the rows kept in memory from batch to batch (the
	// default) or writing them whenever more than 3 are kept; the whole log in one batch.
	for _, c := range []struct{ batch, carry int }{{7, 0}, {7, 3}, {0, 0}} {
		t.Run(fmt.Sprintf("batch %d carry %d", c.batch, c.carry), func(t *testing.T) {
			if c.carry > 0 {
				defer projections.SetCarryLimit(c.carry)()
			}
			dir := t.TempDir()
			var last projections.ReplayProgress
			res, err := projections.Rebuild(ctx, projections.RebuildConfig{Dir: dir, Log: e.store,
				Projections: projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo}), BatchSize: c.batch, Logger: quiet,
				Progress: func(p projections.ReplayProgress) { last = p }})
			if err != nil || res.Position != head || res.Events != int(head) {
				t.Fatalf("Rebuild = %+v, %v; want position and events %d", res, err, head)
			}
			if last.Position != head {
				t.Errorf("last progress %+v, want position %d", last, head)
			}
			entries, _ := os.ReadDir(dir)
			for _, en := range entries {
				if strings.Contains(en.Name(), "-part-") {
					t.Errorf("part file %s left behind", en.Name())
				}
			}
			rebuilt, err := projections.Open(projections.Config{Path: res.Path, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer rebuilt.Close()
			compareDBs(t, e.db, rebuilt)
			// The secondary indexes are all there.
			if a, b := dump(t, e.db, `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`),
				dump(t, rebuilt, `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`); !slices.Equal(a, b) {
				t.Errorf("indexes: live %v, rebuilt %v", a, b)
			}
			// ... and hold exactly their tables' rows: those of the parts were built in the
			// part files and copied over record by record.
			if got := dump(t, rebuilt, `PRAGMA integrity_check`); !slices.Equal(got, []string{"ok"}) {
				t.Errorf("integrity_check of the rebuilt file: %v", got)
			}
		})
	}
}
