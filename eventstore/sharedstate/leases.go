package sharedstate

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/eventstore/follow"
)

// Leases is the NATS follow.Leases: one entry per lease name in the <prefix>_leases bucket,
// whose TTL is the lease's, holding the holder's id. Taking a free lease is a Create (only
// one of concurrent takers succeeds), renewing it an Update on the revision the holder read
// (it fails if the entry expired and another instance took it meanwhile), and the bucket's
// TTL removes the entry of a holder that stopped renewing (killed, cut off from NATS) LeaseTTL
// after its last renewal, by the NATS server's clock: no two instances' clocks are compared.
// The shared progress is one entry per name in <prefix>_progress, raised with
// compare-and-set.
type Leases struct{ s *State }

var _ follow.Leases = (*Leases)(nil)

// Acquire implements follow.Leases.
func (l *Leases) Acquire(ctx context.Context, name, holder string) (bool, error) {
	key := l.s.key(bucketLeases, name)
	e, err := l.s.get(ctx, bucketLeases, key)
	if err != nil {
		return false, err
	}
	switch {
	case e.revision == 0:
		err = l.s.put(ctx, bucketLeases, key, []byte(holder), 0)
	case hmac.Equal(e.value, []byte(holder)):
		err = l.s.put(ctx, bucketLeases, key, []byte(holder), e.revision)
	default:
		return false, nil
	}
	if errors.Is(err, errConflict) {
		return false, nil // another instance took it first
	}
	return err == nil, err
}

// Release implements follow.Leases.
func (l *Leases) Release(ctx context.Context, name, holder string) error {
	key := l.s.key(bucketLeases, name)
	e, err := l.s.get(ctx, bucketLeases, key)
	if err != nil || e.revision == 0 || !hmac.Equal(e.value, []byte(holder)) {
		return err
	}
	if err := l.s.remove(ctx, bucketLeases, key, e.revision); err != nil && !errors.Is(err, errConflict) {
		return err
	}
	return nil
}

// Progress implements follow.Leases.
func (l *Leases) Progress(ctx context.Context, name string) (uint64, error) {
	p, _, err := l.progress(ctx, l.s.key(bucketProgress, name))
	return p, err
}

func (l *Leases) progress(ctx context.Context, key string) (uint64, uint64, error) {
	e, err := l.s.get(ctx, bucketProgress, key)
	if err != nil || e.revision == 0 {
		return 0, 0, err
	}
	if len(e.value) != 8 {
		return 0, 0, errors.New("sharedstate: a progress entry is not 8 bytes")
	}
	return binary.BigEndian.Uint64(e.value), e.revision, nil
}

// SaveProgress implements follow.Leases.
func (l *Leases) SaveProgress(ctx context.Context, name string, position uint64) error {
	key := l.s.key(bucketProgress, name)
	for range casRetries {
		cur, rev, err := l.progress(ctx, key)
		if err != nil {
			return err
		}
		if cur >= position {
			return nil
		}
		switch err := l.s.put(ctx, bucketProgress, key, binary.BigEndian.AppendUint64(nil, position), rev); {
		case err == nil:
			return nil
		case !errors.Is(err, errConflict):
			return err
		}
	}
	return fmt.Errorf("%w: too much contention on one progress entry", ErrUnavailable)
}

// TTL implements follow.Leases.
func (l *Leases) TTL() time.Duration { return l.s.cfg.LeaseTTL }
