package kurrentdb

import (
	"context"
	"fmt"
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// readBackMax is the largest append whose events Append reads back in one request to learn
// their exact positions; longer appends read back only their first event.
const readBackMax = 64

// Append writes events to the end of stream in one KurrentDB append (all or none) when the
// stream's version matches expected, and returns where they landed. The stream id must start
// with one of domain.StreamPrefixes, event ids must be canonical UUIDs and data valid JSON, else
// the error wraps eventstore.ErrInvalidEvent and nothing is sent; an append the server refuses
// as too large (its MaxAppendSize, 1 MiB by default) also wraps ErrInvalidEvent. A version
// mismatch wraps eventstore.ErrWrongExpectedVersion. An unreachable server wraps
// eventstore.ErrUnavailable; the append may then have been written or not, and retrying it
// with the same events and expected version is idempotent on KurrentDB.
//
// RecordedAt is Config.Now at the call, the same for every event of the append. Positions: the
// server reports the commit position of the last event written, which is LastPosition; a
// single-event append has FirstPosition == LastPosition. For a longer append the store reads the
// appended events back from the stream (the first 64, or only the first one beyond that) to
// learn FirstPosition and check LastPosition. Should that read fail, or the server report no
// position (as it does for an idempotent repeat of an earlier append), FirstPosition falls back
// to LastPosition, which may then be 0: the append itself still succeeded.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []domain.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if !hasVigilPrefix(stream) {
		return eventstore.AppendResult{}, fmt.Errorf("%w: stream %q has none of Vigil's prefixes %v, so its events would be invisible to ReadAll and Subscribe",
			eventstore.ErrInvalidEvent, stream, domain.StreamPrefixes)
	}
	rev, err := expectedRevision(expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	now := s.cfg.Now()
	proposed := make([]esdb.EventData, len(events))
	for i, e := range events {
		if proposed[i], err = encodeEvent(e, now); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	return call(ctx, s, "append to "+stream, func(ctx context.Context, c *esdb.Client) (eventstore.AppendResult, error) {
		wr, err := c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: rev}, proposed...)
		if err != nil {
			if status.Code(err) == codes.InvalidArgument {
				return eventstore.AppendResult{}, fmt.Errorf("%w: the server refused the append: %w", eventstore.ErrInvalidEvent, err)
			}
			return eventstore.AppendResult{}, err
		}
		res := eventstore.AppendResult{
			FirstPosition: wr.CommitPosition,
			LastPosition:  wr.CommitPosition,
			NextVersion:   wr.NextExpectedVersion + 1,
		}
		if len(proposed) > 1 || res.LastPosition == 0 {
			s.readBack(ctx, c, stream, proposed, &res)
		}
		return res, nil
	}, nil)
}

// readBack reads the events an append just wrote to learn their exact positions (see Append).
// It never fails the append: on any trouble it keeps what the server reported.
func (s *Store) readBack(ctx context.Context, c *esdb.Client, stream string, written []esdb.EventData, res *eventstore.AppendResult) {
	n := uint64(len(written))
	if res.NextVersion < n {
		return
	}
	firstRev := res.NextVersion - n // NextVersion is the last event's version = its revision + 1
	recs, err := readRecords(ctx, c, stream, firstRev, min(n, readBackMax))
	switch {
	case err != nil:
		s.log.Debug("kurrentdb: reading back an append failed; FirstPosition falls back to LastPosition", "stream", stream, "err", err)
	case len(recs) == 0 || recs[0].EventID != written[0].EventID:
		s.log.Debug("kurrentdb: reading back an append found other events; FirstPosition falls back to LastPosition", "stream", stream)
	default:
		if p := positionOf(recs[0].Position); p != 0 {
			res.FirstPosition = p
		}
		last := recs[len(recs)-1]
		if uint64(len(recs)) == n && last.EventID == written[n-1].EventID {
			if p := positionOf(last.Position); p != 0 {
				if res.LastPosition != 0 && p != res.LastPosition {
					s.log.Warn("kurrentdb: the append's reported position differs from its last event's; using the event's",
						"stream", stream, "reported", res.LastPosition, "event", p)
				}
				res.LastPosition = p
			}
		} else if res.LastPosition == 0 {
			if one, err := readRecords(ctx, c, stream, res.NextVersion-1, 1); err == nil && len(one) == 1 && one[0].EventID == written[n-1].EventID {
				res.LastPosition = positionOf(one[0].Position)
			}
		}
	}
	if res.FirstPosition == 0 || res.FirstPosition > res.LastPosition {
		res.FirstPosition = res.LastPosition
	}
}

// readRecords reads up to count events of stream from revision fromRev on, forwards. A stream
// that does not exist or was deleted gives no events and no error.
func readRecords(ctx context.Context, c *esdb.Client, stream string, fromRev, count uint64) ([]*esdb.RecordedEvent, error) {
	rs, err := c.ReadStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(fromRev)}, count)
	if err != nil {
		if isNotFound(err) || isDeleted(err) {
			return nil, nil
		}
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if isEOF(err) {
			return out, nil
		}
		if err != nil {
			if isNotFound(err) || isDeleted(err) {
				return nil, nil
			}
			return nil, err
		}
		if rec := ev.OriginalEvent(); rec != nil {
			out = append(out, rec)
		}
	}
}

// ReadStream returns up to limit events of stream with version >= fromVersion (0 and 1 both
// mean from the start), in version order; limit <= 0 means no limit. A stream that does not
// exist, or was deleted, gives an empty slice and no error. KurrentDB system events in the
// stream (type starting with "$") are left out. Position is set when the server reports it on
// stream reads (EventStoreDB 22.6 and later, every KurrentDB), else 0.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error) {
	if stream == "" {
		return nil, fmt.Errorf("%w: empty stream id", eventstore.ErrInvalidEvent)
	}
	rev := uint64(0)
	if fromVersion > 1 {
		rev = fromVersion - 1
	}
	count := uint64(math.MaxInt64) // "no limit"; the server treats the count as a signed 64-bit number
	if limit > 0 {
		count = uint64(limit)
	}
	return call(ctx, s, "read stream "+stream, func(ctx context.Context, c *esdb.Client) ([]domain.Envelope, error) {
		recs, err := readRecords(ctx, c, stream, rev, count)
		if err != nil {
			return nil, err
		}
		out := make([]domain.Envelope, 0, len(recs))
		for _, rec := range recs {
			if len(rec.EventType) > 0 && rec.EventType[0] == '$' {
				continue
			}
			env, err := decodeEvent(rec)
			if err != nil {
				return nil, err
			}
			out = append(out, env)
		}
		return out, s.fillStreamHashes(ctx, c, out)
	}, nil)
}

// ReadAll returns up to limit of Vigil's events (see the package comment) with a position
// strictly greater than after, in global order. limit must be positive, else the error wraps
// eventstore.ErrInvalidEvent. It reads $all from the event at position after (excluded), or
// from the start for 0, in pages of at most Config.ReadBatch events, skipping other events. An
// after that falls between two events (the server refuses to read from there) costs a
// backwards scan from the end of the log to the last event at or before it.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: ReadAll limit must be positive, got %d", eventstore.ErrInvalidEvent, limit)
	}
	return call(ctx, s, "read $all", func(ctx context.Context, c *esdb.Client) ([]domain.Envelope, error) {
		out, err := s.readAllFrom(ctx, c, allFrom(after), after, limit)
		if err != nil && after > 0 && isInvalidPosition(err) {
			var from esdb.AllPosition
			if from, err = s.floor(ctx, c, after); err != nil {
				return nil, err
			}
			out, err = s.readAllFrom(ctx, c, from, after, limit)
		}
		if err != nil {
			return nil, err
		}
		return out, s.fillHashes(ctx, c, after, out)
	}, nil)
}

// readAllFrom collects up to limit Vigil events with a commit position > after, reading $all
// forwards from from.
func (s *Store) readAllFrom(ctx context.Context, c *esdb.Client, from esdb.AllPosition, after uint64, limit int) ([]domain.Envelope, error) {
	out := make([]domain.Envelope, 0, min(limit, 1024))
	err := s.scanAll(ctx, c, esdb.Forwards, from, limit+1, func(rec *esdb.RecordedEvent) (bool, error) {
		if rec.Position.Commit <= after || !isVigilEvent(rec.StreamID, rec.EventType) {
			return true, nil
		}
		env, err := decodeEvent(rec)
		if err != nil {
			return false, err
		}
		out = append(out, env)
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Head returns the position of the last of Vigil's events in $all, 0 when there is none. It
// reads $all backwards from the end, past any system or foreign events.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	return call(ctx, s, "head", func(ctx context.Context, c *esdb.Client) (uint64, error) {
		var head uint64
		err := s.scanAll(ctx, c, esdb.Backwards, esdb.End{}, 32, func(rec *esdb.RecordedEvent) (bool, error) {
			if isVigilEvent(rec.StreamID, rec.EventType) {
				head = positionOf(rec.Position)
				return false, nil
			}
			return true, nil
		})
		return head, err
	}, nil)
}

// floor finds where to read $all from to see the events after the position after when after
// itself is not an event's position: the position of the last event (any event, Vigil's or
// not) at or before after, or the start of the log when every event is after it. It scans $all
// backwards from the end.
func (s *Store) floor(ctx context.Context, c *esdb.Client, after uint64) (esdb.AllPosition, error) {
	var found *esdb.Position
	err := s.scanAll(ctx, c, esdb.Backwards, esdb.End{}, 64, func(rec *esdb.RecordedEvent) (bool, error) {
		if rec.Position.Commit <= after {
			p := rec.Position
			found = &p
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return esdb.Start{}, nil
	}
	return *found, nil
}

// scanAll reads $all in direction dir from from, page by page (the first page asks for
// firstPage events, later ones twice as many up to Config.ReadBatch), and calls visit on every
// event once, in order, until visit returns false or an error, or the log ends. Reads from a
// position include the event there going forwards and exclude it going backwards; events
// already visited are skipped either way.
func (s *Store) scanAll(ctx context.Context, c *esdb.Client, dir esdb.Direction, from esdb.AllPosition, firstPage int,
	visit func(rec *esdb.RecordedEvent) (bool, error)) error {
	page := min(max(firstPage, 32), s.cfg.ReadBatch)
	var last esdb.Position
	seen := false
	for {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: dir, From: from}, uint64(page))
		if err != nil {
			return err
		}
		n, progressed := 0, false
		for {
			ev, err := rs.Recv()
			if isEOF(err) {
				break
			}
			if err != nil {
				rs.Close()
				return err
			}
			n++
			rec := ev.OriginalEvent()
			if rec == nil {
				continue
			}
			if seen && ((dir == esdb.Forwards && !posLess(last, rec.Position)) || (dir == esdb.Backwards && !posLess(rec.Position, last))) {
				continue
			}
			last, seen, progressed = rec.Position, true, true
			more, err := visit(rec)
			if err != nil || !more {
				rs.Close()
				return err
			}
		}
		rs.Close()
		if n < page || !progressed {
			return nil
		}
		from = last
		page = min(page*2, s.cfg.ReadBatch)
	}
}
