package mail_test

import (
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// BenchmarkOutboxDelivery: the outbox delivering b.N security mails (password changes of
// 50 accounts, each mail rendered in text and HTML with its details and not-me link) to an
// SMTP server in the process over a real TCP connection, from a real sealed log, saving its
// checkpoint after each message. The events are in the log before the timer starts; the
// timer runs from the outbox's start until the server holds the b.N-th message. Reports
// mails/s (target: at least 200, issue 15).
func BenchmarkOutboxDelivery(b *testing.B) {
	f := newFixture(b, mailtest.Config{})
	// Start once so the checkpoint exists (at the head), then stop: the events appended now
	// are after it and will be mailed by the next start.
	f.start(nil)
	f.stop()
	accts := make([]string, 50)
	for i := range accts {
		accts[i] = f.account(domain.NewID()[:8]+"@example.com", "Bench", "")
	}
	var last domain.Envelope
	for i := range b.N {
		last = f.passwordChanged(accts[i%len(accts)])
	}
	b.ResetTimer()
	start := time.Now()
	f.start(nil)
	ctx, cancel := testwait.Context(5 * time.Minute)
	defer cancel()
	if err := f.outbox.WaitFor(ctx, last.Position); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	if got := len(f.smtp.Messages()); got != b.N {
		b.Fatalf("the server holds %d messages, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "mails/s")
	f.stop()
}
