package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// clusterLeaseTTL is the instances' --lease-ttl in TestClusterMailOncePerDeployment.
const clusterLeaseTTL = 2 * time.Second

// TestClusterMailOncePerDeployment runs three `vigil serve` processes on one log and one NATS
// server, all with --smtp-url to one SMTP server, behind the round-robin proxy: each
// registration's verification mail arrives exactly once (one instance holds the outbox's
// lease). The holder is then killed with SIGKILL while it is sending: another instance takes
// over within about one lease TTL, resumes from the shared progress, and mails the
// registrations made before and after the kill that were not sent yet; of the mail sent before
// the kill at most one (the message in flight: accepted by the SMTP server, not yet recorded)
// arrives twice.
func TestClusterMailOncePerDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers")
	}
	smtp := mailtest.Start(t, mailtest.Config{Delay: 150 * time.Millisecond})
	c := newClusterWith(t, 3, []string{"VIGIL_LEASE_TTL=" + clusterLeaseTTL.String()}, "--smtp-url", smtp.URL())

	registered := 0
	register := func(n int, phase string) []string {
		var emails []string
		for range n {
			registered++
			email := fmt.Sprintf("%s-%d@example.com", phase, registered)
			c.register(email)
			emails = append(emails, email)
		}
		return emails
	}
	allMailed := func(emails []string, what string) {
		t.Helper()
		testwait.Until(t, 30*time.Second, what, func() (bool, string) {
			got := verificationMail(smtp.Messages())
			for _, e := range emails {
				if got[e] == 0 {
					return false, "no mail yet for " + e
				}
			}
			return true, ""
		})
	}

	// Nine registrations through the proxy (three on each instance): one mail each.
	first := register(9, "first")
	allMailed(first, "the verification mail of the first nine registrations")
	holder := c.mailHolder()
	got := verificationMail(smtp.Messages())
	for _, e := range first {
		if got[e] != 1 {
			t.Fatalf("%s got %d verification mails from three instances, want exactly 1", e, got[e])
		}
	}
	t.Logf("instance %d holds the mail outbox's lease", holder)

	// The sign-in risk detector runs on every instance: a sign-in from a new device is judged
	// by all three, recorded once (RecordSignInRisk appends with the stream's version and finds
	// the record another instance made), and mailed once (the outbox's lease).
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	risky := first[:3]
	for _, e := range risky {
		if code := loginAs(t, c.front.URL, e, firefox); code != http.StatusOK {
			t.Fatalf("sign-in of %s from a new device: %d", e, code)
		}
	}
	testwait.Until(t, 30*time.Second, "the sign-in risk mails", func() (bool, string) {
		n := mailOfKind(smtp.Messages(), mail.KindSignInRisk)
		return len(n) == len(risky), fmt.Sprint(n)
	})
	for e, n := range mailOfKind(smtp.Messages(), mail.KindSignInRisk) {
		if n != 1 {
			t.Fatalf("%s got %d sign-in risk mails, want 1", e, n)
		}
	}

	// Twenty more; the holder is killed while it sends them (150 ms per message).
	second := register(20, "second")
	for len(verificationMail(smtp.Messages())) < len(first)+3 {
		testwait.Recv(t, 20*time.Second, "a few of the second batch mailed", smtp.Changed())
	}
	victim := c.nodes[holder]
	victim.dead.Store(true)
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	_ = victim.cmd.Wait()
	killedAt := time.Now()
	countBefore := 0
	for _, n := range verificationMail(smtp.Messages()) {
		countBefore += n
	}
	if countBefore >= len(first)+len(second) {
		t.Fatalf("all mail was sent before the kill: the test did not kill the holder mid-way")
	}
	t.Logf("%d of %d verification mails sent when the holder was killed", countBefore, len(first)+len(second))

	// Another instance takes the lease once it has expired.
	newHolder := c.mailHolder()
	takeover := time.Since(killedAt)
	if newHolder == holder {
		t.Fatalf("instance %d still reported as holder after its kill", holder)
	}
	// Registrations after the kill, through the proxy (the victim is out of the rotation).
	third := register(6, "third")
	allMailed(append(append([]string{}, second...), third...), "the mail of the registrations before and after the kill")

	got = verificationMail(smtp.Messages())
	dups := 0
	inFlight := map[string]bool{} // the batch the holder was sending
	for _, e := range second {
		inFlight[e] = true
	}
	for e, n := range got {
		if n > 1 {
			dups += n - 1
			if _, ok := inFlight[e]; !ok {
				t.Fatalf("%s mailed %d times: only a message of the batch the holder was sending may repeat", e, n)
			}
		}
	}
	if dups > 1 {
		t.Fatalf("%d messages sent twice after one kill; at most the one in flight may be", dups)
	}
	for _, e := range first {
		if got[e] != 1 {
			t.Fatalf("%s (mailed before the second batch) got %d mails", e, got[e])
		}
	}
	if n := mailOfKind(smtp.Messages(), mail.KindSignInRisk); len(n) != len(risky) {
		t.Fatalf("sign-in risk mails after the kill: %v", n)
	}
	c.checkSharedLog(risky)
	t.Logf("instance %d took over %s after the kill (lease TTL %s); %d message repeated",
		newHolder, takeover.Round(10*time.Millisecond), clusterLeaseTTL, dups)
}

// verificationMail counts the verification mails per recipient.
func verificationMail(ms []mailtest.Message) map[string]int {
	return mailOfKind(ms, mail.KindVerifyEmail)
}

// loginAs signs in with the cluster password from a browser with user agent ua.
func loginAs(t *testing.T, base, email, ua string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": clusterPassword})
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/login", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", ua)
	req.Header.Set("X-Forwarded-For", "203.0.113.50")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// mailOfKind counts the mails of one kind per recipient.
func mailOfKind(ms []mailtest.Message, kind string) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		if m.Header.Get(mail.HeaderKind) == kind {
			for _, to := range m.To {
				out[to]++
			}
		}
	}
	return out
}

// mailHolder waits until exactly one live instance reports holding the mail outbox's lease
// (vigil_mail_outbox_lease_held on /metrics) and returns its index.
func (c *cluster) mailHolder() int {
	c.t.Helper()
	holder := -1
	testwait.Until(c.t, 5*clusterLeaseTTL, "one instance to hold the mail lease", func() (bool, string) {
		var holders []int
		for i, nd := range c.nodes {
			if nd.dead.Load() {
				continue
			}
			if leaseHeld(c.t, nd.url, "vigil_mail_outbox_lease_held") {
				holders = append(holders, i)
			}
		}
		if len(holders) != 1 {
			return false, fmt.Sprintf("holders %v", holders)
		}
		holder = holders[0]
		return true, ""
	})
	return holder
}

func leaseHeld(t *testing.T, base, metric string) bool {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, metric+"{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// checkSharedLog stops the live instances cleanly and checks the shared log: one
// SignInRiskDetected per risky session (three detectors judged each), and the checkpoints of
// the hash chain, written by three competing checkpointers, strictly increasing and verified
// by `vigil verify`.
func (c *cluster) checkSharedLog(risky []string) {
	t := c.t
	t.Helper()
	for _, nd := range c.nodes {
		if nd.dead.Load() {
			continue
		}
		_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		if err := nd.cmd.Wait(); err != nil {
			t.Fatalf("vigil serve after SIGTERM: %v", err)
		}
	}
	store, err := sqlite.Open(sqlite.Config{Path: c.logPath, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	perSession := map[string]int{}
	for _, e := range testkit.ReadLog(t, store) {
		if e.Type != domain.EventSignInRiskDetected {
			continue
		}
		var d struct {
			SessionID string `json:"session_id"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		perSession[d.SessionID]++
	}
	if len(perSession) != len(risky) {
		t.Fatalf("%d sessions with a SignInRiskDetected, want %d", len(perSession), len(risky))
	}
	for s, n := range perSession {
		if n != 1 {
			t.Fatalf("session %s: %d SignInRiskDetected from three detectors, want 1", s, n)
		}
	}
	cps, err := store.Checkpoints(context.Background(), 0, 100000)
	if err != nil || len(cps) < 2 {
		t.Fatalf("checkpoints: %d, %v", len(cps), err)
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Position <= cps[i-1].Position {
			t.Fatalf("checkpoint %d at %d after one at %d", i, cps[i].Position, cps[i-1].Position)
		}
	}
	out, err := exec.Command(c.bin, "verify", "--data-dir", c.shared, "--log-signing-key-file", c.sigFile).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "verified ") {
		t.Fatalf("vigil verify of the shared log: %v\n%s", err, out)
	}
	t.Logf("%d checkpoints by three instances; %s", len(cps), strings.TrimSpace(string(out)))
}
