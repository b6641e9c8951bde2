package follow

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

// TestSlogLoggerKeepsWhatIsOn: the level check in front of Watermill's adapter drops only
// what the logger would drop; what it keeps comes out as the adapter writes it, fields
// included, also through With.
func TestSlogLoggerKeepsWhatIsOn(t *testing.T) {
	var buf bytes.Buffer
	l := newSlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Trace("trace line", watermill.LogFields{"k": "t"})
	l.Debug("debug line", watermill.LogFields{"k": "d"})
	l.With(watermill.LogFields{"w": "x"}).Info("info line", watermill.LogFields{"k": "i"})
	l.With(watermill.LogFields{"w": "x"}).Trace("trace with", nil)
	out := buf.String()
	for _, want := range []string{"debug line", "k=d", "info line", "w=x", "k=i"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from %q", want, out)
		}
	}
	if strings.Contains(out, "trace") {
		t.Errorf("a trace line below the logger's level came out: %q", out)
	}
	buf.Reset()
	trace := newSlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: watermill.LevelTrace})))
	trace.Trace("trace line", watermill.LogFields{"k": "t"})
	if !strings.Contains(buf.String(), "trace line") || !strings.Contains(buf.String(), "k=t") {
		t.Errorf("a trace line at the logger's level was dropped: %q", buf.String())
	}
}
