package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/vigil-auth/vigil/eventstore/sealed"
)

// Stream names of the KurrentDB key store. None starts with one of domain.StreamPrefixes, so
// the event store's $all reads and subscriptions never see them.
const (
	KeyStreamPrefix = "vigilkey-"
	checkStream     = "vigilkeys-check"
	keyEventType    = "VigilDataKey"
	checkEventType  = "VigilKeyStoreCheck"
)

// KurrentDB is the key store of a KurrentDB deployment: each key is the one event of its own
// stream, KeyStreamPrefix + key id, its data the wrapped key. Destroy tombstones the stream:
// reads of it fail at once and it can never be written again (so a destroyed key is never
// created anew).
//
// Scavenge duty: a tombstone hides the key's event but leaves its bytes in the server's chunk
// files until a scavenge rewrites them, and a scavenge never rewrites the chunk still being
// written. Erasure is complete only once the chunk holding the key is complete and has been
// scavenged, and backups taken before have expired. Operators must therefore run a scavenge
// regularly (at least daily, e.g. POST /admin/scavenge from cron, or the server's scheduled
// scavenge) and keep backups no longer than the erasure deadline allows. Until then the
// leftover bytes are still wrapped under the server key, so a copy of the database without
// the server key opens nothing. Give the key streams an ACL that only Vigil's user can read.
type KurrentDB struct {
	client    *esdb.Client
	ownClient bool
	w         *wrapper
}

var _ sealed.KeyStore = (*KurrentDB)(nil)

// OpenKurrentDB connects to the server named by connectionString (the kurrentdb://, kurrent://,
// kdb:// and esdb:// schemes, optionally +discover, as eventstore/kurrentdb accepts) and checks
// the server key (sealed.ErrWrongServerKey when the key streams were made with another one).
// Close closes the connection.
func OpenKurrentDB(ctx context.Context, connectionString string, serverKey []byte) (*KurrentDB, error) {
	cs := strings.TrimSpace(connectionString)
	scheme, rest, ok := strings.Cut(cs, "://")
	if !ok {
		return nil, errors.New("keystore: the KurrentDB connection string has no scheme")
	}
	scheme = strings.ToLower(scheme)
	discover := strings.HasSuffix(scheme, "+discover")
	switch strings.TrimSuffix(scheme, "+discover") {
	case "kurrentdb", "kurrent", "kdb", "esdb":
	default:
		return nil, fmt.Errorf("keystore: connection string scheme %q is not a KurrentDB one", scheme)
	}
	scheme = "esdb"
	if discover {
		scheme += "+discover"
	}
	conf, err := esdb.ParseConnectionString(scheme + "://" + rest)
	if err != nil {
		return nil, fmt.Errorf("keystore: KurrentDB connection string: %w", err)
	}
	client, err := esdb.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("keystore: KurrentDB client: %w", err)
	}
	k, err := NewKurrentDB(ctx, client, serverKey)
	if err != nil {
		client.Close()
		return nil, err
	}
	k.ownClient = true
	return k, nil
}

// NewKurrentDB uses a client the caller made (and closes); it checks the server key like
// OpenKurrentDB.
func NewKurrentDB(ctx context.Context, client *esdb.Client, serverKey []byte) (*KurrentDB, error) {
	w, err := newWrapper(serverKey)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	k := &KurrentDB{client: client, w: w}
	check, err := k.first(ctx, checkStream)
	if errors.Is(err, sealed.ErrKeyNotFound) {
		err = k.appendFirst(ctx, checkStream, checkEventType, w.checkValue())
		if err == nil || isWrongVersion(err) { // a concurrent first start wrote it
			check, err = k.first(ctx, checkStream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: KurrentDB check value: %w", err)
	}
	if err := w.verifyCheck(check); err != nil {
		return nil, fmt.Errorf("keystore: KurrentDB: %w", err)
	}
	return k, nil
}

// first returns the data of the first event of stream: ErrKeyNotFound when the stream does
// not exist, ErrKeyDestroyed when it was tombstoned.
func (k *KurrentDB) first(ctx context.Context, stream string) ([]byte, error) {
	rs, err := k.client.ReadStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Start{}}, 1)
	if err != nil {
		return nil, classify(err)
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return nil, sealed.ErrKeyNotFound
	}
	if err != nil {
		return nil, classify(err)
	}
	if ev.Event == nil {
		return nil, fmt.Errorf("keystore: stream %s: an event with no record", stream)
	}
	return ev.Event.Data, nil
}

func (k *KurrentDB) appendFirst(ctx context.Context, stream, eventType string, data []byte) error {
	_, err := k.client.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}},
		esdb.EventData{EventID: uuid.New(), EventType: eventType, ContentType: esdb.ContentTypeBinary, Data: data})
	if err != nil && !isWrongVersion(err) {
		return classify(err)
	}
	return err
}

func esdbCode(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func isWrongVersion(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeWrongExpectedVersion
}

// classify maps the client's not-found and deleted errors onto sealed's.
func classify(err error) error {
	switch code, _ := esdbCode(err); code {
	case esdb.ErrorCodeResourceNotFound:
		return fmt.Errorf("%w (%w)", sealed.ErrKeyNotFound, err)
	case esdb.ErrorCodeStreamDeleted:
		return fmt.Errorf("%w (%w)", sealed.ErrKeyDestroyed, err)
	}
	return err
}

// Key implements sealed.KeyStore. Creation appends the key expecting no stream: of concurrent
// creators one wins and the others read its key.
func (k *KurrentDB) Key(ctx context.Context, keyID string, create bool) ([]byte, error) {
	if err := checkIDs(keyID); err != nil {
		return nil, err
	}
	stream := KeyStreamPrefix + keyID
	wrapped, err := k.first(ctx, stream)
	if create && errors.Is(err, sealed.ErrKeyNotFound) {
		if err = k.appendFirst(ctx, stream, keyEventType, k.w.wrap(keyID, newKey())); err == nil || isWrongVersion(err) {
			wrapped, err = k.first(ctx, stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: key %s: %w", keyID, err)
	}
	return k.w.unwrapKey(keyID, wrapped)
}

// Destroy implements sealed.KeyStore by tombstoning each key's stream (see the scavenge duty
// in the type's doc).
func (k *KurrentDB) Destroy(ctx context.Context, keyIDs ...string) error {
	if err := checkIDs(keyIDs...); err != nil {
		return err
	}
	for _, id := range keyIDs {
		_, err := k.client.TombstoneStream(ctx, KeyStreamPrefix+id, esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
		if err != nil && !errors.Is(classify(err), sealed.ErrKeyDestroyed) {
			return fmt.Errorf("keystore: destroy key %s: %w", id, err)
		}
	}
	return nil
}

// Close closes the client when OpenKurrentDB made it.
func (k *KurrentDB) Close() error {
	if k.ownClient {
		return k.client.Close()
	}
	return nil
}
