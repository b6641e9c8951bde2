package sharedstate

import (
	"context"
	"errors"
	"time"
)

// DefaultAckTTL is how long a poll acknowledgement is kept (SSFAcks).
const DefaultAckTTL = 7 * 24 * time.Hour

// SSFAcks is the ssf.Acks (package eventstore/forward/ssf) of several instances: one entry per acknowledged SET (stream and
// jti) in the <prefix>_ssf_acks bucket, kept Config.AckTTL (default 7 days). A poll on any
// instance drops from its queue what was acknowledged on another. An instance that comes back
// after more than that TTL may offer SETs acknowledged before again (at-least-once: receivers
// drop repeats by jti).
type SSFAcks struct{ s *State }

// Ack records jtis as acknowledged on stream.
func (a *SSFAcks) Ack(ctx context.Context, stream string, jtis []string) error {
	for _, jti := range jtis {
		key := a.s.key(bucketSSFAcks, stream+"\x00"+jti)
		if err := a.s.put(ctx, bucketSSFAcks, key, []byte{1}, 0); err != nil && !errors.Is(err, errConflict) {
			return err
		}
	}
	return nil
}

// Acked returns which of jtis were acknowledged on stream.
func (a *SSFAcks) Acked(ctx context.Context, stream string, jtis []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, jti := range jtis {
		e, err := a.s.get(ctx, bucketSSFAcks, a.s.key(bucketSSFAcks, stream+"\x00"+jti))
		if err != nil {
			return nil, err
		}
		if e.revision != 0 {
			out[jti] = true
		}
	}
	return out, nil
}
