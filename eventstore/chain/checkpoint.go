package chain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Checkpoint is a signed statement that the chain hash of the event at Position is Hash.
type Checkpoint struct {
	Position uint64 `json:"position"`
	Hash     string `json:"hash"`
	// Time is when it was signed, RFC 3339 UTC, kept as the exact text that was signed.
	Time      string `json:"time"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // Ed25519 over Message, standard padded base64
}

// FormatTime is how checkpoint times are written: RFC 3339 UTC with nanoseconds.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Message is the signed text: the UTF-8 bytes of "vigil.checkpoint.v1\n<position>\n<hash>\n<time>".
func (c Checkpoint) Message() []byte {
	return []byte("vigil.checkpoint.v1\n" + strconv.FormatUint(c.Position, 10) + "\n" + c.Hash + "\n" + c.Time)
}

// Errors of checkpoint storage and verification.
var (
	// ErrCheckpointStale: a checkpoint at or after this position is already stored (another
	// instance was first); nothing was written, and nothing needs to be.
	ErrCheckpointStale = errors.New("chain: a checkpoint at or after this position is already stored")
	// ErrCheckpointMismatch: the checkpoint's hash is not the chain hash of the event at its
	// position, or no event is there.
	ErrCheckpointMismatch = errors.New("chain: the checkpoint does not match the log")
	// ErrUnknownKey: no trusted key has the checkpoint's key id.
	ErrUnknownKey = errors.New("chain: the checkpoint's key is not among the trusted keys")
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = errors.New("chain: bad checkpoint signature")
)

// Verify checks a checkpoint's signature against the trusted keys.
func (ks KeySet) Verify(c Checkpoint) error {
	pub, ok := ks[c.KeyID]
	if !ok {
		return fmt.Errorf("%w (key_id %q)", ErrUnknownKey, c.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.Message(), sig) {
		return fmt.Errorf("%w (key_id %s)", ErrBadSignature, c.KeyID)
	}
	return nil
}

// Log is what a chained event store offers the checkpointer, the verifier's callers and the
// HTTP layer. Both backends implement it (eventstore.Chain).
type Log interface {
	// ChainHead returns the position and chain hash of the last event, (0, Zero) for an empty
	// log.
	ChainHead(ctx context.Context) (uint64, Sum, error)
	// Checkpoints returns up to limit checkpoints with a position greater than after, oldest
	// first.
	Checkpoints(ctx context.Context, after uint64, limit int) ([]Checkpoint, error)
	// AppendCheckpoint stores cp after the last checkpoint. It fails with ErrCheckpointStale
	// when a checkpoint at or after cp.Position is stored, and ErrCheckpointMismatch when
	// cp.Hash is not the chain hash at cp.Position. It does not check the signature.
	AppendCheckpoint(ctx context.Context, cp Checkpoint) error
}

// Checkpointer signs a checkpoint of the log's head every Interval while events arrive, and a
// last one when it stops.
type Checkpointer struct {
	log      Log
	keys     *KeyRing
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu     sync.Mutex
	last   uint64 // position of the last checkpoint known to be stored
	cancel context.CancelFunc
	done   chan struct{}
}

// CheckpointerConfig configures NewCheckpointer.
type CheckpointerConfig struct {
	Log  Log
	Keys *KeyRing
	// Interval between checkpoints while the log grows; default 1 minute.
	Interval time.Duration
	// Now stamps checkpoints; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// NewCheckpointer returns a checkpointer; Start runs it.
func NewCheckpointer(cfg CheckpointerConfig) *Checkpointer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Checkpointer{log: cfg.Log, keys: cfg.Keys, interval: cfg.Interval, now: cfg.Now, logger: cfg.Logger.With("component", "log-checkpoints")}
}

// Log is the log the checkpointer signs.
func (c *Checkpointer) Log() Log { return c.log }

// Checkpoint signs and stores a checkpoint of the current head when it is beyond the last
// checkpoint; it returns the checkpoint and whether one was written. Losing the race to another
// instance is not an error.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pos, hash, err := c.log.ChainHead(ctx)
	if err != nil || pos == 0 || pos <= c.last {
		return Checkpoint{}, false, err
	}
	cp := c.keys.Sign(pos, hash, c.now())
	switch err := c.log.AppendCheckpoint(ctx, cp); {
	case err == nil:
		c.last = pos
		return cp, true, nil
	case errors.Is(err, ErrCheckpointStale):
		c.last = pos
		return Checkpoint{}, false, nil
	default:
		return Checkpoint{}, false, err
	}
}

// Start runs the checkpointer in the background until Stop.
func (c *Checkpointer) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil {
					c.logger.Warn("writing a log checkpoint failed; retrying at the next tick", "err", err)
				}
			}
		}
	}()
}

// Stop ends the background loop and writes a last checkpoint (a clean stop leaves the whole
// log signed). Call it after the last append and before closing the store.
func (c *Checkpointer) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	_, _, err := c.Checkpoint(ctx)
	return err
}
