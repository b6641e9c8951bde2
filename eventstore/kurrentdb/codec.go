package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// parseConnectionString accepts the KurrentDB schemes (kurrentdb, kurrent, kdb, each with an
// optional +discover) besides the client's own esdb and esdb+discover, which are the only ones
// this client version parses (esdb/configuration.go:208-209).
func parseConnectionString(cs string) (*esdb.Configuration, error) {
	cs = strings.TrimSpace(cs)
	i := strings.Index(cs, "://")
	if i <= 0 {
		return nil, fmt.Errorf("kurrentdb: connection string %q has no scheme (want kurrentdb://host:2113?tls=false or similar)", redact(cs))
	}
	scheme, rest := strings.ToLower(cs[:i]), cs[i:]
	base, discover := strings.CutSuffix(scheme, "+discover")
	switch base {
	case "kurrentdb", "kurrent", "kdb", "esdb":
	default:
		return nil, fmt.Errorf("kurrentdb: connection string scheme %q is not one of kurrentdb, kurrent, kdb or esdb (with an optional +discover)", scheme)
	}
	scheme = "esdb"
	if discover {
		scheme = "esdb+discover"
	}
	conf, err := esdb.ParseConnectionString(scheme + rest)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: connection string %s: %w", redact(cs), err)
	}
	return conf, nil
}

// redact hides the password of a connection string, for messages.
func redact(cs string) string {
	i := strings.Index(cs, "://")
	if i < 0 {
		return cs
	}
	rest := cs[i+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return cs
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return cs[:i+3] + url.PathEscape(user) + ":xxxxx" + rest[at:]
}

// expectedRevision maps Vigil's expected version onto the client's: Any to any, NoStream to
// no stream, and version n (1-based) to revision n-1 (0-based).
func expectedRevision(e eventstore.ExpectedVersion) (esdb.ExpectedRevision, error) {
	switch {
	case e == eventstore.Any:
		return esdb.Any{}, nil
	case e == eventstore.NoStream:
		return esdb.NoStream{}, nil
	case e > 0:
		return esdb.Revision(uint64(e) - 1), nil
	default:
		return nil, fmt.Errorf("%w: expected version %d", eventstore.ErrInvalidEvent, int64(e))
	}
}

// storedMetadata is the user metadata stored with every event: the envelope fields KurrentDB
// has no place for, and domain.Metadata's fields at the top level.
type storedMetadata struct {
	SchemaVersion int    `json:"schema_version"`
	RecordedAt    string `json:"recorded_at"` // RFC 3339 with nanoseconds, UTC
	domain.Metadata
	// KurrentDB's conventional names, which its $by_correlation_id projection reads. They
	// repeat Metadata.CorrelationID and CausationID and are ignored when decoding.
	ConventionCorrelationID string `json:"$correlationId,omitempty"`
	ConventionCausationID   string `json:"$causationId,omitempty"`
}

// encodeEvent turns an unstored Vigil event into the client's EventData, stamped with
// recordedAt. The id must be a canonical lowercase UUID (what domain.NewID makes), because
// KurrentDB stores ids as UUIDs and gives them back in that form; the data must be valid JSON.
func encodeEvent(e domain.EventData, recordedAt time.Time) (esdb.EventData, error) {
	id, err := uuid.Parse(e.ID)
	if err != nil || id == uuid.Nil || id.String() != e.ID {
		return esdb.EventData{}, fmt.Errorf("%w: event id %q is not a canonical non-nil UUID", eventstore.ErrInvalidEvent, e.ID)
	}
	if !json.Valid(e.Data) {
		return esdb.EventData{}, fmt.Errorf("%w: event %s (%s) data is not valid JSON", eventstore.ErrInvalidEvent, e.ID, e.Type)
	}
	md, err := json.Marshal(storedMetadata{
		SchemaVersion:           e.SchemaVersion,
		RecordedAt:              recordedAt.UTC().Format(time.RFC3339Nano),
		Metadata:                e.Metadata,
		ConventionCorrelationID: e.Metadata.CorrelationID,
		ConventionCausationID:   e.Metadata.CausationID,
	})
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("%w: event %s metadata: %v", eventstore.ErrInvalidEvent, e.ID, err)
	}
	return esdb.EventData{
		EventID:     id,
		EventType:   e.Type,
		ContentType: esdb.ContentTypeJson,
		Data:        e.Data,
		Metadata:    md,
	}, nil
}

// decodeEvent turns a stored event back into a Vigil envelope. Version is the revision + 1;
// Position is the commit position (0 when the server did not report one: servers before
// EventStoreDB 22.6 leave it unset on stream reads). An event without Vigil's metadata (written
// by another tool) decodes with schema version 0, empty metadata and the server's creation
// time as RecordedAt.
func decodeEvent(rec *esdb.RecordedEvent) (domain.Envelope, error) {
	env := domain.Envelope{
		ID:         rec.EventID.String(),
		StreamID:   rec.StreamID,
		Version:    rec.EventNumber + 1,
		Position:   positionOf(rec.Position),
		Type:       rec.EventType,
		RecordedAt: rec.CreatedDate.UTC(),
	}
	if len(rec.Data) > 0 {
		env.Data = json.RawMessage(rec.Data)
	}
	if len(rec.UserMetadata) == 0 {
		return env, nil
	}
	var md storedMetadata
	if err := json.Unmarshal(rec.UserMetadata, &md); err != nil {
		return domain.Envelope{}, fmt.Errorf("kurrentdb: event %s in %s at revision %d has unreadable metadata: %w",
			env.ID, rec.StreamID, rec.EventNumber, err)
	}
	env.SchemaVersion = md.SchemaVersion
	env.Metadata = md.Metadata
	if md.RecordedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, md.RecordedAt)
		if err != nil {
			return domain.Envelope{}, fmt.Errorf("kurrentdb: event %s in %s at revision %d has a bad recorded_at %q: %w",
				env.ID, rec.StreamID, rec.EventNumber, md.RecordedAt, err)
		}
		env.RecordedAt = t.UTC()
	}
	return env, nil
}

// positionOf is the Vigil position of a $all position: its commit position, or 0 for the
// "no position" marker (all ones) that old servers send on stream reads.
func positionOf(p esdb.Position) uint64 {
	if p.Commit == math.MaxUint64 {
		return 0
	}
	return p.Commit
}

// allFrom is where a forward read or subscription of $all starts to see the events after the
// Vigil position after: the start of the log for 0, else the event at that position (reads
// include it and subscriptions exclude it; callers skip positions <= after either way).
func allFrom(after uint64) esdb.AllPosition {
	if after == 0 {
		return esdb.Start{}
	}
	return esdb.Position{Commit: after, Prepare: after}
}

// posLess orders two $all positions.
func posLess(a, b esdb.Position) bool {
	return a.Commit < b.Commit || (a.Commit == b.Commit && a.Prepare < b.Prepare)
}

// isVigilEvent says whether an event of $all is one of Vigil's: not a system event (type
// starting with "$") and in a stream with one of domain.StreamPrefixes.
func isVigilEvent(stream, eventType string) bool {
	return !strings.HasPrefix(eventType, "$") && hasVigilPrefix(stream)
}

func hasVigilPrefix(stream string) bool {
	for _, p := range domain.StreamPrefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// vigilFilter is the server-side filter of Vigil's $all subscriptions.
func vigilFilter() *esdb.SubscriptionFilter {
	return &esdb.SubscriptionFilter{
		Type:     esdb.StreamFilterType,
		Prefixes: append([]string(nil), domain.StreamPrefixes...),
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func esdbCode(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// isNotFound: the stream does not exist (or was soft-deleted).
func isNotFound(err error) bool {
	if code, ok := esdbCode(err); ok && code == esdb.ErrorCodeResourceNotFound {
		return true
	}
	return status.Code(err) == codes.NotFound
}

// isDeleted: the stream was tombstoned (esdb/impl.go:65-68).
func isDeleted(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeStreamDeleted
}

// isInvalidPosition: the server refused to read $all from a position that is not the start of
// a log record ("Trying to read from an invalid position", gRPC InvalidArgument).
func isInvalidPosition(err error) bool {
	return status.Code(err) == codes.InvalidArgument
}

// discoveryFailed matches the error of a failed discovery (esdb/impl.go:558-561), after which
// the client's connection loop has exited and every later call fails.
func discoveryFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// clientDead: the client cannot be used any more (its connection loop exited after a failed
// discovery; every later call gets ErrorCodeConnectionClosed, esdb/impl.go:85-90).
func clientDead(err error) bool {
	if discoveryFailed(err) {
		return true
	}
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeConnectionClosed
}

// clientClosedBeforeCall: the call was refused before anything was sent because the client
// was already dead; it is safe to retry on a fresh client.
func clientClosedBeforeCall(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeConnectionClosed
}

// connectionLost: the node could not be reached; the client would rediscover by itself, but
// the store replaces it instead (see Store).
func connectionLost(err error) bool {
	if code, ok := esdbCode(err); ok && code == esdb.ErrorUnavailable {
		return true
	}
	return status.Code(err) == codes.Unavailable
}

// connectionShaky: the server answered late or sent the call elsewhere; the client is kept but
// must prove itself again before calls run concurrently on it.
func connectionShaky(err error) bool {
	if code, ok := esdbCode(err); ok {
		switch code {
		case esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
			return true
		}
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// serverAnswered: an error the server sent on purpose, which proves the connection works.
func serverAnswered(err error) bool {
	if code, ok := esdbCode(err); ok {
		switch code {
		case esdb.ErrorCodeWrongExpectedVersion, esdb.ErrorCodeResourceNotFound, esdb.ErrorCodeStreamDeleted:
			return true
		}
	}
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// permanent: retrying cannot help (credentials, permissions, a server too old for a feature,
// a bad request).
func permanent(err error) bool {
	if code, ok := esdbCode(err); ok {
		switch code {
		case esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnsupportedFeature, esdb.ErrorCodeParsing:
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.InvalidArgument:
		return true
	}
	return false
}

// mapError turns what a call returned into Vigil's errors: the caller's context error when ctx
// ended, ErrClosed when the store closed, ErrWrongExpectedVersion, ErrUnavailable for anything
// that says the server could not be reached or did not answer in time (an Append that fails so
// may or may not have been written; retrying it with the same event ids and expected version
// is idempotent on KurrentDB), and the error itself, prefixed with the operation, otherwise.
// The original error stays in the chain for errors.As.
func (s *Store) mapError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("kurrentdb: %s: %w", op, ctx.Err())
	case errors.Is(err, eventstore.ErrClosed):
		return fmt.Errorf("kurrentdb: %s: %w", op, eventstore.ErrClosed)
	case errors.Is(err, eventstore.ErrInvalidEvent), errors.Is(err, eventstore.ErrWrongExpectedVersion):
		return fmt.Errorf("kurrentdb: %s: %w", op, err)
	}
	if code, ok := esdbCode(err); ok && code == esdb.ErrorCodeWrongExpectedVersion {
		return fmt.Errorf("kurrentdb: %s: %w: %w", op, eventstore.ErrWrongExpectedVersion, err)
	}
	if s.ctx.Err() != nil { // the store closed under the call
		return fmt.Errorf("kurrentdb: %s: %w", op, eventstore.ErrClosed)
	}
	if errors.Is(err, eventstore.ErrUnavailable) {
		return fmt.Errorf("kurrentdb: %s: %w", op, err)
	}
	if clientDead(err) || connectionLost(err) || connectionShaky(err) {
		return fmt.Errorf("kurrentdb: %s: %w: %w", op, eventstore.ErrUnavailable, err)
	}
	return fmt.Errorf("kurrentdb: %s: %w", op, err)
}
