// Package wmbridge turns an eventstore.Store subscription into a Watermill message.Subscriber,
// so projections and forwarders run as ordinary Watermill router handlers with its middleware
// (recovery, retry, metrics).
//
// Each topic is a consumer name (a projection, a forwarder). Subscribe starts after the
// consumer's checkpoint, as its CheckpointSource reports it, and delivers the log's events in
// global order, one at a time: the next message is sent only once the previous one is acked.
// A nack rewinds: the subscriber waits (growing back-off), re-reads the consumer's committed
// checkpoint and resubscribes from there, so a consumer that acknowledges before it commits
// (batching) never loses an event. Events after the checkpoint that the consumer has already
// applied are delivered again; consumers skip positions they have seen.
package wmbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// Metadata keys set on every message. The payload is the JSON of domain.Envelope.
const (
	MetaPosition = "vigil_position"
	MetaType     = "vigil_type"
	MetaStream   = "vigil_stream"
	// MetaMore is "1" when the store subscription already held the next event as this one
	// was delivered, else "0": a consumer that batches its work (eventstore/follow) can
	// finish a batch at once when nothing else is waiting.
	MetaMore = "vigil_more"
)

// CheckpointSource tells where a consumer's committed progress stands: the global position of
// the last event it has durably processed (0 for none).
type CheckpointSource interface {
	Checkpoint(ctx context.Context, name string) (uint64, error)
}

// SubscriberConfig configures NewSubscriber.
type SubscriberConfig struct {
	// Checkpoints gives each topic's start position; nil starts every topic at the beginning.
	Checkpoints CheckpointSource
	// Logger defaults to watermill.NopLogger.
	Logger watermill.LoggerAdapter
	// NackBackoff is the first wait after a nack; it doubles up to MaxNackBackoff. Defaults
	// 50ms and 5s.
	NackBackoff, MaxNackBackoff time.Duration
}

// Subscriber is a message.Subscriber over an event store. Safe for concurrent use.
type Subscriber struct {
	store   eventstore.Store
	cfg     SubscriberConfig
	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
	rewinds map[string]chan struct{} // per topic, buffered 1
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber reading store.
func NewSubscriber(store eventstore.Store, cfg SubscriberConfig) (*Subscriber, error) {
	if store == nil {
		return nil, errors.New("wmbridge: store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	if cfg.NackBackoff <= 0 {
		cfg.NackBackoff = 50 * time.Millisecond
	}
	if cfg.MaxNackBackoff <= 0 {
		cfg.MaxNackBackoff = 5 * time.Second
	}
	return &Subscriber{store: store, cfg: cfg, closing: make(chan struct{}), rewinds: map[string]chan struct{}{}}, nil
}

// Rewind makes topic's subscription drop what it is delivering and resume after the
// consumer's committed checkpoint, as after a nack. A consumer calls it when it has lost
// events it already acknowledged (a failed batch commit). Safe to call at any time; calls
// while a rewind is pending are merged.
func (s *Subscriber) Rewind(topic string) {
	select {
	case s.rewindChan(topic) <- struct{}{}:
	default:
	}
}

func (s *Subscriber) rewindChan(topic string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.rewinds[topic]
	if !ok {
		ch = make(chan struct{}, 1)
		s.rewinds[topic] = ch
	}
	return ch
}

// Subscribe starts delivering the events after topic's checkpoint. The channel is closed when
// ctx is cancelled, Close is called, or the store subscription fails (logged).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("wmbridge: subscriber closed")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// Read even when ctx has ended: the subscription then starts and ends at once, as
	// Watermill's router expects of every handler it was given (it waits for them on Close).
	start, err := s.checkpoint(context.WithoutCancel(ctx), topic)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.run(ctx, topic, start, out)
	}()
	return out, nil
}

func (s *Subscriber) checkpoint(ctx context.Context, topic string) (uint64, error) {
	if s.cfg.Checkpoints == nil {
		return 0, nil
	}
	pos, err := s.cfg.Checkpoints.Checkpoint(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("wmbridge: checkpoint of %s: %w", topic, err)
	}
	return pos, nil
}

// run delivers events until the end; after a nack it resubscribes from the checkpoint.
func (s *Subscriber) run(ctx context.Context, topic string, start uint64, out chan<- *message.Message) {
	fields := watermill.LogFields{"topic": topic}
	backoff := s.cfg.NackBackoff
	for {
		rewind, err := s.deliver(ctx, topic, start, out)
		if err != nil {
			s.cfg.Logger.Error("event subscription ended", err, fields)
			return
		}
		if !rewind {
			return
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		}
		backoff = min(backoff*2, s.cfg.MaxNackBackoff)
		if start, err = s.checkpoint(ctx, topic); err != nil {
			s.cfg.Logger.Error("cannot resume after nack", err, fields)
			return
		}
		s.cfg.Logger.Debug("resuming after nack", watermill.LogFields{"topic": topic, "after": start})
	}
}

// deliver runs one store subscription. It returns rewind=true after a nack, and an error when
// the store subscription failed.
func (s *Subscriber) deliver(ctx context.Context, topic string, after uint64, out chan<- *message.Message) (rewind bool, err error) {
	sub, err := s.store.Subscribe(ctx, after)
	if err != nil {
		return false, err
	}
	defer sub.Close()
	rewindCh := s.rewindChan(topic)
	for {
		var ev domain.Envelope
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return false, sub.Err()
			}
			ev = e
		case <-rewindCh:
			return true, nil
		case <-ctx.Done():
			return false, nil
		case <-s.closing: // else Close would wait for the next event of an idle log
			return false, nil
		}
		msg, err := toMessage(ev, len(sub.Events()) > 0)
		if err != nil {
			return false, err
		}
		msgCtx, cancel := context.WithCancel(context.WithValue(ctx, envelopeKey{}, &ev))
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-rewindCh:
			cancel()
			return true, nil
		case <-ctx.Done():
			cancel()
			return false, nil
		case <-s.closing:
			cancel()
			return false, nil
		}
		select {
		case <-msg.Acked():
			cancel()
		case <-msg.Nacked():
			cancel()
			return true, nil
		case <-rewindCh:
			cancel() // the handler's verdict on msg no longer matters
			return true, nil
		case <-ctx.Done():
			cancel()
			return false, nil
		case <-s.closing:
			cancel()
			return false, nil
		}
	}
}

func toMessage(ev domain.Envelope, more bool) (*message.Message, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("wmbridge: encode event %s: %w", ev.ID, err)
	}
	msg := message.NewMessage(ev.ID, payload)
	msg.Metadata.Set(MetaPosition, strconv.FormatUint(ev.Position, 10))
	msg.Metadata.Set(MetaType, ev.Type)
	msg.Metadata.Set(MetaStream, ev.StreamID)
	if more {
		msg.Metadata.Set(MetaMore, "1")
	} else {
		msg.Metadata.Set(MetaMore, "0")
	}
	return msg, nil
}

// envelopeKey is the context key under which a message carries the envelope it was made
// from.
type envelopeKey struct{}

// Envelope returns the event of a message produced by this package: the envelope the message
// carries in its context when it is the one delivered (a consumer catching up on the log
// decoded every event's JSON again, a third of its CPU: issue 16's profile of a new
// instance), else the payload decoded (a copy of the message, or one from elsewhere).
func Envelope(msg *message.Message) (domain.Envelope, error) {
	if ev, ok := msg.Context().Value(envelopeKey{}).(*domain.Envelope); ok && ev.ID == msg.UUID {
		return *ev, nil
	}
	var ev domain.Envelope
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return ev, fmt.Errorf("wmbridge: decode message %s: %w", msg.UUID, err)
	}
	return ev, nil
}

// Close ends every subscription and waits for their goroutines.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
