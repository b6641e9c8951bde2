package follow

import (
	"context"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
)

// Reader reads the log in global order (eventstore.Store does).
type Reader interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// Pages reads the log after position after in pages of size events and hands each page to
// handle, until a page comes back empty (the end of the log at that moment): the fast path of
// a consumer far behind, and of a rebuild. The next page is read while handle works on the
// current one. It returns the last position of the last page handled; an error of handle or of
// a read stops it.
func Pages(ctx context.Context, log Reader, after uint64, size int, handle func(context.Context, []domain.Envelope) error) (uint64, error) {
	type page struct {
		after  uint64
		events []domain.Envelope
		err    error
	}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		from := after
		for {
			evs, err := log.ReadAll(readCtx, from, size)
			select {
			case pages <- page{after: from, events: evs, err: err}:
			case <-readCtx.Done():
				return
			}
			if err != nil || len(evs) == 0 {
				return
			}
			from = evs[len(evs)-1].Position
		}
	}()
	pos := after
	for {
		p, ok := <-pages
		switch {
		case !ok:
			return pos, fmt.Errorf("read after %d: %w", pos, ctx.Err())
		case p.err != nil:
			return pos, fmt.Errorf("read after %d: %w", p.after, p.err)
		case len(p.events) == 0:
			return pos, nil
		}
		if err := handle(ctx, p.events); err != nil {
			return pos, err
		}
		pos = p.events[len(p.events)-1].Position
	}
}
