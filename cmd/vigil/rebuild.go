package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/projections"
)

// runProjectionsRebuild is `vigil projections rebuild`: it takes serve's flags and variables
// (the data directory, the store and the GeoIP databases matter), rebuilds every read model
// from the log into a fresh file with a progress bar on stderr, and swaps it in. A server
// running on the same data directory keeps serving from the old file meanwhile and adopts
// the new one within a second.
func runProjectionsRebuild(ctx context.Context, s cli.Settings, e cli.Env) int {
	cfg, err := validate(s)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: projections rebuild: %v\n", err)
		return cli.ExitUsage
	}
	bar := newProgressBar(e.Stderr, time.Now)
	ac := cfg.appConfig(slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, err := app.Rebuild(ctx, ac, bar.update)
	bar.finish()
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: projections rebuild: %v\n", err)
		return cli.ExitFailure
	}
	rate := 0.0
	if s := res.Elapsed.Seconds(); s > 0 {
		rate = float64(res.Events) / s
	}
	fmt.Fprintf(e.Stdout, "rebuilt %d events in %s (%s events/s) up to position %d\nswapped in %s (was %s); a running server adopts it within a second\n",
		res.Events, res.Elapsed.Round(time.Millisecond), groupDigits(int64(rate)), res.Position, res.Path, res.Previous)
	return cli.ExitOK
}

// progressBar draws a rebuild's progress: a bar on a terminal (redrawn at most every 100 ms),
// else a line every 5 s. Positions measure progress: they grow with the log (byte offsets on
// KurrentDB, event numbers on SQLite), so the share and the ETA are estimates.
type progressBar struct {
	w        io.Writer
	now      func() time.Time
	terminal bool
	last     time.Time
	drawn    bool
}

func newProgressBar(w io.Writer, now func() time.Time) *progressBar {
	term := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			term = true
		}
	}
	return &progressBar{w: w, now: now, terminal: term}
}

// line renders one progress line.
func (b *progressBar) line(p projections.ReplayProgress) string {
	share := 1.0
	if p.Head > 0 {
		share = min(1, float64(p.Position)/float64(p.Head))
	}
	rate, eta := 0.0, "?"
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Events) / s
		if share > 0 && share < 1 {
			eta = (time.Duration(s * (1 - share) / share * float64(time.Second))).Round(time.Second).String()
		} else if share >= 1 {
			eta = "0s"
		}
	}
	const width = 30
	full := int(share * width)
	return fmt.Sprintf("[%s%s] %5.1f%%  %s events  %s events/s  ETA %s",
		strings.Repeat("#", full), strings.Repeat(".", width-full), share*100,
		groupDigits(int64(p.Events)), groupDigits(int64(rate)), eta)
}

func (b *progressBar) update(p projections.ReplayProgress) {
	now := b.now()
	every := 5 * time.Second
	if b.terminal {
		every = 100 * time.Millisecond
	}
	if !b.last.IsZero() && now.Sub(b.last) < every && p.Position < p.Head {
		return
	}
	b.last = now
	if b.terminal {
		fmt.Fprintf(b.w, "\r\033[K%s", b.line(p))
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, b.line(p))
}

func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

// groupDigits writes n with thousands separators: 1234567 -> "1,234,567".
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// snapshotOptions are --out and serve's options (a function: serveOptions is complete only
// after the package's init).
func snapshotOptions() []cli.Option {
	return append([]cli.Option{
		{Flag: "out", Env: "VIGIL_SNAPSHOT_OUT", Meta: "FILE", DefHelp: "required", Help: "the snapshot file to write (must not exist)"},
	}, serveOptions...)
}

// indexesAt is the position of the in-memory indexes' state a snapshot carries.
func indexesAt(info projections.SnapshotInfo) uint64 {
	if len(info.Indexes) == 0 {
		return 0
	}
	return info.Indexes[0].Position
}

// runProjectionsSnapshot is `vigil projections snapshot --out F`: a consistent copy of the read
// models of --data-dir with their checkpoints, which `vigil serve --read-models-from F` starts
// from. A server may be running on the directory meanwhile.
func runProjectionsSnapshot(ctx context.Context, s cli.Settings, e cli.Env) int {
	out := s["out"]
	if out.Value == "" {
		fmt.Fprintf(e.Stderr, "vigil: projections snapshot: %v\n", out.Errorf("is required"))
		return cli.ExitUsage
	}
	cfg, err := validate(s)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: projections snapshot: %v\n", err)
		return cli.ExitUsage
	}
	start := time.Now()
	info, err := app.Snapshot(ctx, cfg.appConfig(slog.New(slog.NewTextHandler(io.Discard, nil))), out.Value)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: projections snapshot: %v\n", err)
		return cli.ExitFailure
	}
	fmt.Fprintf(e.Stdout, "wrote %s (%s bytes, read models up to position %d, in-memory indexes up to %d, schema %s) and its SHA-256 to %s%s in %s\n",
		out.Value, groupDigits(info.Size), info.Position, indexesAt(info), info.SchemaVersion, out.Value, app.DigestSuffix, time.Since(start).Round(time.Millisecond))
	return cli.ExitOK
}
