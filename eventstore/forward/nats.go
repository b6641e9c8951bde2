package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/vigil-auth/vigil/domain"
)

// Defaults of NATSConfig.
const (
	DefaultNATSSubjectPrefix = "vigil.events"
	DefaultNATSStream        = "VIGIL_EVENTS"
	// DefaultNATSDuplicates is the duplicate window of the stream Vigil creates: JetStream
	// drops a message whose Nats-Msg-Id it has seen within it.
	DefaultNATSDuplicates = 10 * time.Minute
)

// NATSConfig configures the NATS JetStream forwarder.
type NATSConfig struct {
	// URL of the NATS server(s) (--forward-nats-url). Required.
	URL string
	// SubjectPrefix: an event of type T is published on <SubjectPrefix>.T; default
	// DefaultNATSSubjectPrefix.
	SubjectPrefix string
	// Stream is the JetStream stream that captures <SubjectPrefix>.>. When no stream of
	// this name exists, Vigil creates it (file storage, duplicate window
	// DefaultNATSDuplicates, no limits); an existing one is used as it is, and must capture
	// the subjects. Default DefaultNATSStream.
	Stream string
	// Options are extra connection options (credentials, TLS).
	Options []nats.Option
}

// ErrNATS: the NATS server cannot be used (unreachable, no JetStream, a stream that does not
// capture Vigil's subjects).
var ErrNATS = errors.New("forward: NATS JetStream unusable")

type natsSink struct {
	nc     *nats.Conn
	pub    *wmnats.Publisher
	prefix string
	encode Encoder
}

func newNATSSink(cfg NATSConfig, encode Encoder, log *slog.Logger) (*natsSink, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: no URL", ErrNATS)
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultNATSSubjectPrefix
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultNATSStream
	}
	if strings.ContainsAny(cfg.SubjectPrefix, " *>\t\r\n") || strings.HasPrefix(cfg.SubjectPrefix, ".") || strings.HasSuffix(cfg.SubjectPrefix, ".") {
		return nil, fmt.Errorf("%w: subject prefix %q is not a NATS subject without wildcards", ErrNATS, cfg.SubjectPrefix)
	}
	opts := append([]nats.Option{nats.Name("vigil-forwarder"), nats.MaxReconnects(-1), nats.Timeout(5 * time.Second)}, cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect: %w", ErrNATS, err)
	}
	if err := ensureStream(nc, cfg); err != nil {
		nc.Close()
		return nil, err
	}
	pub, err := wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		// TrackMsgId: the message UUID (the event id) is the Nats-Msg-Id, so JetStream drops
		// what a restart sends again. Publish waits for JetStream's acknowledgement.
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true, PublishOptions: []nats.PubOpt{nats.AckWait(5 * time.Second)}},
	}, watermill.NewSlogLogger(log.With("component", "forward-nats")))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrNATS, err)
	}
	return &natsSink{nc: nc, pub: pub, prefix: cfg.SubjectPrefix, encode: encode}, nil
}

// ensureStream creates the stream when it is missing, and checks that an existing one
// captures <prefix>.>.
func ensureStream(nc *nats.Conn, cfg NATSConfig) error {
	js, err := nc.JetStream()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNATS, err)
	}
	want := cfg.SubjectPrefix + ".>"
	info, err := js.StreamInfo(cfg.Stream)
	if errors.Is(err, nats.ErrStreamNotFound) {
		_, err = js.AddStream(&nats.StreamConfig{
			Name:        cfg.Stream,
			Description: "Vigil's event log, one message per event (Nats-Msg-Id = event id)",
			Subjects:    []string{want},
			Storage:     nats.FileStorage,
			Duplicates:  DefaultNATSDuplicates,
		})
		if err != nil {
			return fmt.Errorf("%w: create stream %s: %w", ErrNATS, cfg.Stream, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrNATS, cfg.Stream, err)
	}
	for _, s := range info.Config.Subjects {
		if s == want || s == ">" {
			return nil
		}
	}
	return fmt.Errorf("%w: stream %s exists but does not capture %s (its subjects: %s)", ErrNATS, cfg.Stream, want,
		strings.Join(info.Config.Subjects, ", "))
}

// deliver publishes one event and returns once JetStream has stored it (or reports a
// duplicate it already holds).
func (n *natsSink) deliver(_ context.Context, ev domain.Envelope) (bool, error) {
	body, err := n.encode(ev)
	if err != nil {
		return false, fmt.Errorf("forward: encode event %s: %w", ev.ID, err)
	}
	msg := message.NewMessage(ev.ID, body)
	msg.Metadata.Set(nats.MsgIdHdr, ev.ID)
	msg.Metadata.Set("Content-Type", "application/cloudevents+json")
	msg.Metadata.Set("Vigil-Position", strconv.FormatUint(ev.Position, 10))
	if err := n.pub.Publish(n.prefix+"."+ev.Type, msg); err != nil {
		return false, fmt.Errorf("forward: publish event %s: %w", ev.ID, err)
	}
	return false, nil
}

func (n *natsSink) close() { _ = n.pub.Close() }
