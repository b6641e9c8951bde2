package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// CheckpointStream holds the signed checkpoints of the chain. Its name has none of Vigil's
// prefixes, so its events are not part of the chain (nor of ReadAll and Subscribe).
const CheckpointStream = "vigil-log-checkpoints"

// checkpointType is the event type of a checkpoint in CheckpointStream.
const checkpointType = "LogCheckpoint"

// On KurrentDB several instances append and no event can carry its hash: the chain is a fold
// over $all, Vigil's events only (isVigilEvent: no "$" system event, no foreign stream, not the
// checkpoint stream), in commit order. Every instance computes the same fold from the same
// stored bytes, so they agree on every hash, and checkpoints go to one stream appended with
// an expected revision, so a single sequence of checkpoints exists whoever writes them.
//
// chainIndex remembers the fold: its tip, the hash of each of the last recentMax events, and a
// mark every markEvery events, from which an older hash is recomputed with one read.
type chainIndex struct {
	mu     sync.Mutex
	tipPos uint64 // position of the last event folded, 0 before the first
	tip    chain.Sum
	count  uint64
	recent []chainMark // the last folded events, ascending
	marks  []chainMark // every markEvery-th event, ascending
	hasher chain.Hasher
}

type chainMark struct {
	pos uint64
	sum chain.Sum
}

const (
	recentMax = 1 << 17
	markEvery = 256
)

var _ eventstore.Chain = (*Store)(nil)

func (ix *chainIndex) fold(e *domain.Envelope) {
	ix.tip = ix.hasher.Next(ix.tip, e)
	ix.tipPos = e.Position
	ix.count++
	m := chainMark{e.Position, ix.tip}
	if ix.count%markEvery == 0 {
		ix.marks = append(ix.marks, m)
	}
	if len(ix.recent) == recentMax {
		// Drop the older half at once rather than shifting on every event.
		ix.recent = append(ix.recent[:0], ix.recent[recentMax/2:]...)
	}
	ix.recent = append(ix.recent, m)
}

// hashAt returns the position of the last of Vigil's events at or before pos and the chain
// hash there ((0, chain.Zero) when there is none), folding $all as far as needed.
func (s *Store) hashAt(ctx context.Context, c *esdb.Client, pos uint64) (uint64, chain.Sum, error) {
	ix := &s.chain
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for ix.tipPos < pos {
		evs, err := s.readAllFrom(ctx, c, allFrom(ix.tipPos), ix.tipPos, s.cfg.ReadBatch)
		if err != nil {
			return 0, chain.Zero, err
		}
		for i := range evs {
			ix.fold(&evs[i])
		}
		if len(evs) < s.cfg.ReadBatch {
			break // the end of the log
		}
	}
	if pos >= ix.tipPos {
		return ix.tipPos, ix.tip, nil
	}
	if n := len(ix.recent); n > 0 && ix.recent[0].pos <= pos {
		i := sort.Search(n, func(i int) bool { return ix.recent[i].pos > pos }) - 1
		return ix.recent[i].pos, ix.recent[i].sum, nil
	}
	// Older than the recent window: refold from the last mark at or before pos.
	from := chainMark{}
	if i := sort.Search(len(ix.marks), func(i int) bool { return ix.marks[i].pos > pos }) - 1; i >= 0 {
		from = ix.marks[i]
	}
	var h chain.Hasher
	for {
		evs, err := s.readAllFrom(ctx, c, allFrom(from.pos), from.pos, markEvery+1)
		if err != nil {
			return 0, chain.Zero, err
		}
		for i := range evs {
			if evs[i].Position > pos {
				return from.pos, from.sum, nil
			}
			from = chainMark{evs[i].Position, h.Next(from.sum, &evs[i])}
		}
		if len(evs) == 0 {
			return from.pos, from.sum, nil
		}
	}
}

// fillHashes sets the Hash of events read in global order, the first of which follows every
// event at or before after.
func (s *Store) fillHashes(ctx context.Context, c *esdb.Client, after uint64, evs []domain.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	_, prev, err := s.hashAt(ctx, c, after)
	if err != nil {
		return err
	}
	var h chain.Hasher
	for i := range evs {
		prev = h.Next(prev, &evs[i])
		evs[i].Hash = prev.String()
	}
	return nil
}

// fillStreamHashes sets the Hash of a stream's events, each from the fold at its position.
func (s *Store) fillStreamHashes(ctx context.Context, c *esdb.Client, evs []domain.Envelope) error {
	for i := range evs {
		if evs[i].Position == 0 {
			continue // an old server that reports no position: the hash cannot be known
		}
		at, sum, err := s.hashAt(ctx, c, evs[i].Position)
		if err != nil {
			return err
		}
		if at == evs[i].Position {
			evs[i].Hash = sum.String()
		}
	}
	return nil
}

// ChainHead returns the position and chain hash of the last of Vigil's events.
func (s *Store) ChainHead(ctx context.Context) (uint64, chain.Sum, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return 0, chain.Zero, err
	}
	type tip struct {
		pos uint64
		sum chain.Sum
	}
	t, err := call(ctx, s, "fold the chain", func(ctx context.Context, c *esdb.Client) (tip, error) {
		pos, sum, err := s.hashAt(ctx, c, head)
		return tip{pos, sum}, err
	}, nil)
	return t.pos, t.sum, err
}

// Checkpoints returns up to limit checkpoints with a position greater than after, oldest
// first, from CheckpointStream.
func (s *Store) Checkpoints(ctx context.Context, after uint64, limit int) ([]chain.Checkpoint, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: Checkpoints limit must be positive", eventstore.ErrInvalidEvent)
	}
	return call(ctx, s, "read "+CheckpointStream, func(ctx context.Context, c *esdb.Client) ([]chain.Checkpoint, error) {
		var out []chain.Checkpoint
		for rev := uint64(0); len(out) < limit; {
			recs, err := readRecords(ctx, c, CheckpointStream, rev, uint64(s.cfg.ReadBatch))
			if err != nil {
				return nil, err
			}
			for _, rec := range recs {
				cp, err := decodeCheckpoint(rec)
				if err != nil {
					return nil, err
				}
				if cp.Position > after && len(out) < limit {
					out = append(out, cp)
				}
			}
			if len(recs) < s.cfg.ReadBatch {
				break
			}
			rev = recs[len(recs)-1].EventNumber + 1
		}
		return out, nil
	}, nil)
}

func decodeCheckpoint(rec *esdb.RecordedEvent) (chain.Checkpoint, error) {
	var cp chain.Checkpoint
	if err := json.Unmarshal(rec.Data, &cp); err != nil {
		return cp, fmt.Errorf("kurrentdb: checkpoint %d of %s is unreadable: %w", rec.EventNumber, CheckpointStream, err)
	}
	return cp, nil
}

// AppendCheckpoint appends cp to CheckpointStream with the expected revision of the last
// checkpoint read, after checking that it comes after that checkpoint and matches the fold:
// of two instances checkpointing at once, one wins and the other gets ErrCheckpointStale.
func (s *Store) AppendCheckpoint(ctx context.Context, cp chain.Checkpoint) error {
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = call(ctx, s, "append to "+CheckpointStream, func(ctx context.Context, c *esdb.Client) (struct{}, error) {
		var expected esdb.ExpectedRevision = esdb.NoStream{}
		rs, err := c.ReadStream(ctx, CheckpointStream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err == nil {
			ev, rerr := rs.Recv()
			rs.Close()
			switch {
			case rerr == nil && ev.OriginalEvent() != nil:
				rec := ev.OriginalEvent()
				last, derr := decodeCheckpoint(rec)
				if derr != nil {
					return struct{}{}, derr
				}
				if last.Position >= cp.Position {
					return struct{}{}, fmt.Errorf("%w (position %d, stored up to %d)", chain.ErrCheckpointStale, cp.Position, last.Position)
				}
				expected = esdb.Revision(rec.EventNumber)
			case rerr != nil && !isEOF(rerr) && !isNotFound(rerr) && !isDeleted(rerr):
				return struct{}{}, rerr
			}
		} else if !isNotFound(err) {
			return struct{}{}, err
		}
		at, sum, err := s.hashAt(ctx, c, cp.Position)
		if err != nil {
			return struct{}{}, err
		}
		if at != cp.Position {
			return struct{}{}, fmt.Errorf("%w: no event at position %d", chain.ErrCheckpointMismatch, cp.Position)
		}
		if sum.String() != cp.Hash {
			return struct{}{}, fmt.Errorf("%w: the chain hash at position %d is not %s", chain.ErrCheckpointMismatch, cp.Position, cp.Hash)
		}
		_, err = c.AppendToStream(ctx, CheckpointStream, esdb.AppendToStreamOptions{ExpectedRevision: expected}, esdb.EventData{
			EventID: uuid.New(), EventType: checkpointType, ContentType: esdb.ContentTypeJson, Data: data,
		})
		if code, ok := esdbCode(err); ok && code == esdb.ErrorCodeWrongExpectedVersion {
			return struct{}{}, fmt.Errorf("%w: another instance appended a checkpoint first", chain.ErrCheckpointStale)
		}
		return struct{}{}, err
	}, nil)
	if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		return fmt.Errorf("%w: %w", chain.ErrCheckpointStale, err)
	}
	return err
}
