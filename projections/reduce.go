package projections

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// The built-in projections are made in Zitadel's shape: a name, a schema (the DDL of their
// tables) and a table from event type name to reducer. Apply looks the event's type up in the
// table and runs that reducer; an event of a type the table does not list is a no-op. Adding
// an event to a read model is one line in its table and one small function, and the table
// says at a glance what a read model listens to.

// reducer folds one event into a projection's tables, inside the runner's batch transaction
// (the rules of Projection.Apply hold). p is the projection's value: a reducer reads the
// projection's settings (GeoIP) from it, so the tables are built once, not per value.
type reducer[P any] func(p P, ctx context.Context, tx *sql.Tx, ev domain.Envelope) error

// reducers is a projection's table from event type name to reducer.
type reducers[P any] map[string]reducer[P]

// apply runs the reducer of ev's type, if the table has one; an error names the projection,
// the event type and the position, so that a stuck projection's LastError says where.
func (r reducers[P]) apply(name string, p P, ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	reduce, ok := r[ev.Type]
	if !ok {
		return nil
	}
	if err := reduce(p, ctx, tx, ev); err != nil {
		return fmt.Errorf("%s: %s at position %d: %w", name, ev.Type, ev.Position, err)
	}
	return nil
}

// on makes a reducer from a function of the event's decoded data, so that each reducer
// receives the type it handles instead of switching on it. Data of another Go type than E
// (no decoder returns one) is skipped, as the type switches before it did.
func on[P any, E domain.Event](f func(p P, ctx context.Context, tx *sql.Tx, ev domain.Envelope, e E) error) reducer[P] {
	return func(p P, ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
		d, err := decode(ctx, ev)
		if err != nil {
			return err
		}
		e, ok := d.(E)
		if !ok {
			return nil
		}
		return f(p, ctx, tx, ev, e)
	}
}

// nanos stores a time as Unix nanoseconds, UTC; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

// eventTime is the time of the decision an event records: its data's "at" (or
// "started_at"), else the store's RecordedAt.
func eventTime(ev domain.Envelope) time.Time {
	var t struct {
		At        time.Time `json:"at"`
		StartedAt time.Time `json:"started_at"`
	}
	if json.Unmarshal(ev.Data, &t) == nil {
		switch {
		case !t.At.IsZero():
			return t.At.UTC()
		case !t.StartedAt.IsZero():
			return t.StartedAt.UTC()
		}
	}
	return ev.RecordedAt.UTC()
}

// eventTimeOf is eventTime, from the page decoded ahead in ctx when it holds ev (a
// rebuild's, which reads each event's time once for every projection).
func eventTimeOf(ctx context.Context, ev domain.Envelope) time.Time {
	if d, ok := ctx.Value(decodedKey{}).(*decodedPage); ok {
		if r := d.find(ev); r != nil {
			return r.at
		}
	}
	return eventTime(ev)
}

// streamID returns the id part of a stream id with the given prefix ("" when it has
// another prefix).
func streamID(stream, prefix string) string {
	id, ok := strings.CutPrefix(stream, prefix)
	if !ok {
		return ""
	}
	return id
}

// decode returns ev's data decoded: from the page decoded ahead in ctx (a rebuild's, see
// withDecoded), else from the cache of the last events decoded, else decoded now.
func decode(ctx context.Context, ev domain.Envelope) (domain.Event, error) {
	if d, ok := ctx.Value(decodedKey{}).(*decodedPage); ok {
		if r := d.find(ev); r != nil {
			return r.ev, r.err
		}
	}
	if e, ok := decoded.get(ev); ok {
		return e, nil
	}
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("%s at position %d: %w", ev.Type, ev.Position, err)
	}
	decoded.put(ev, e)
	return e, nil
}

// decodedPage holds the events of a page decoded once, in position order, for every
// projection that applies the page (a rebuild applies them in parallel), with their times
// (eventTime).
type decodedPage struct {
	first uint64
	dense bool // positions first, first+1, ...: an event's index is its position - first
	evs   []decodedEvent
}

type decodedEvent struct {
	pos uint64
	id  string
	ev  domain.Event
	err error
	at  time.Time
}

type decodedKey struct{}

// decodePage decodes the events of page (the errors as decode returns them).
func decodePage(page []domain.Envelope) *decodedPage {
	d := &decodedPage{evs: make([]decodedEvent, len(page))}
	if len(page) > 0 {
		d.first = page[0].Position
		d.dense = page[len(page)-1].Position-d.first == uint64(len(page)-1)
	}
	for i, ev := range page {
		e, err := domain.DecodeEvent(ev)
		if err != nil {
			err = fmt.Errorf("%s at position %d: %w", ev.Type, ev.Position, err)
		}
		at, ok := decodedTime(ev, e, err)
		if !ok {
			at = eventTime(ev)
		}
		d.evs[i] = decodedEvent{pos: ev.Position, id: ev.ID, ev: e, err: err, at: at}
	}
	return d
}

// decodedTime is eventTime(ev) read from e, the event decoded from ev's data, without parsing
// the data again; false when e cannot tell: a decoding error, data of an older schema version
// (upcast: e's fields need not be the data's), a type with neither an "at" nor a "started_at"
// field, a type without an "at" field whose data may hold one anyway (mayHaveAt), or a zero
// "at" beside no "started_at" field.
func decodedTime(ev domain.Envelope, e domain.Event, err error) (time.Time, bool) {
	if err != nil || e == nil {
		return time.Time{}, false
	}
	if v, ok := domain.Catalog().CurrentVersion(ev.Type); !ok || v != ev.SchemaVersion {
		return time.Time{}, false
	}
	rv := reflect.ValueOf(e)
	f := timeFieldsOf(rv.Type())
	if f.at == nil {
		// A type with a start and no "at" (SessionStarted): its start is eventTime when the
		// data has no member encoding/json would read as "at" either.
		if f.startedAt == nil || mayHaveAt(ev.Data) {
			return time.Time{}, false
		}
	} else if at := rv.FieldByIndex(f.at).Interface().(time.Time); !at.IsZero() {
		return at.UTC(), true
	}
	if f.startedAt == nil {
		return time.Time{}, false
	}
	if t := rv.FieldByIndex(f.startedAt).Interface().(time.Time); !t.IsZero() {
		return t.UTC(), true
	}
	return ev.RecordedAt.UTC(), true
}

// mayHaveAt reports whether data may hold a member encoding/json matches to a field tagged
// "at": a quoted "at" in any casing (no other character folds to 'a' or 't'), or any escape
// (which could spell one).
func mayHaveAt(data []byte) bool {
	if bytes.IndexByte(data, '\\') >= 0 {
		return true
	}
	for i := 0; i+3 < len(data); i++ {
		if data[i] == '"' && data[i+1]|0x20 == 'a' && data[i+2]|0x20 == 't' && data[i+3] == '"' {
			return true
		}
	}
	return false
}

// timeFields locates the fields of an event type that encoding/json fills from the data's
// "at" and "started_at" (nil: none, or not certainly one time.Time field).
type timeFields struct{ at, startedAt []int }

var timeFieldsCache sync.Map // reflect.Type -> timeFields

func timeFieldsOf(t reflect.Type) timeFields {
	if f, ok := timeFieldsCache.Load(t); ok {
		return f.(timeFields)
	}
	var f timeFields
	if t.Kind() == reflect.Struct {
		var at, started [][]int
		embedded := false
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Anonymous {
				embedded = true // promoted fields: let encoding/json decide
				break
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "-" || !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			// encoding/json matches keys without regard to case
			if strings.EqualFold(name, "at") {
				at = append(at, sf.Index)
			}
			if strings.EqualFold(name, "started_at") {
				started = append(started, sf.Index)
			}
			if (strings.EqualFold(name, "at") || strings.EqualFold(name, "started_at")) && sf.Type != reflect.TypeFor[time.Time]() {
				embedded = true // not a time.Time: let encoding/json decide
			}
		}
		if !embedded && len(at) <= 1 && len(started) <= 1 {
			if len(at) == 1 {
				f.at = at[0]
			}
			if len(started) == 1 {
				f.startedAt = started[0]
			}
		}
	}
	timeFieldsCache.Store(t, f)
	return f
}

// find returns ev decoded, nil when the page does not hold it.
func (d *decodedPage) find(ev domain.Envelope) *decodedEvent {
	var i int
	if d.dense {
		if ev.Position < d.first || ev.Position-d.first >= uint64(len(d.evs)) {
			return nil
		}
		i = int(ev.Position - d.first)
	} else {
		i = sort.Search(len(d.evs), func(i int) bool { return d.evs[i].pos >= ev.Position })
		if i == len(d.evs) {
			return nil
		}
	}
	if r := &d.evs[i]; r.pos == ev.Position && r.id == ev.ID {
		return r
	}
	return nil
}

// withDecoded returns ctx carrying a decoded page for decode.
func withDecoded(ctx context.Context, d *decodedPage) context.Context {
	return context.WithValue(ctx, decodedKey{}, d)
}

// decoded remembers the last few events decoded, so that the projections applying one event
// after another (a replay applies every projection to an event before the next) decode it
// once. Decoded events are values that reducers only read.
var decoded decodeCache

type decodeCache struct {
	mu      sync.Mutex
	next    int
	entries [8]struct {
		id  string
		pos uint64
		ev  domain.Event
	}
}

func (c *decodeCache) get(env domain.Envelope) (domain.Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if e := &c.entries[i]; e.ev != nil && e.pos == env.Position && e.id == env.ID {
			return e.ev, true
		}
	}
	return nil, false
}

func (c *decodeCache) put(env domain.Envelope, ev domain.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[c.next]
	e.id, e.pos, e.ev = env.ID, env.Position, ev
	c.next = (c.next + 1) % len(c.entries)
}

// placeholders returns "?, ?, ..., ?" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// tuples returns n groups of m marks: "(?, ?), (?, ?)" for a multi-row statement.
func tuples(n, m int) string {
	if n <= 0 {
		return ""
	}
	one := "(" + placeholders(m) + ")"
	return strings.Repeat(one+", ", n-1) + one
}

// preparedCache keeps the statements prepared in the transactions being applied: SQLite
// compiles a statement on every Exec otherwise, which is most of the cost of a small write.
// Statements prepared in a transaction are closed by database/sql when it ends, so the
// cache forgets transactions in bulk once it holds more than a few.
var preparedCache = struct {
	sync.Mutex
	m map[*sql.Tx]*txState
}{m: map[*sql.Tx]*txState{}}

const preparedTxs = 64

// txState is what the reducers remember about one transaction: its prepared statements and
// the activity rows written in it (see keepTimeBounds).
type txState struct {
	stmts    map[string]*sql.Stmt
	activity activityTimes
	tx       *sql.Tx               // set for a batch's state (withBatch)
	streams  map[string]*streamRow // the stream catalogue's rows of the batch (Streams)
	// streamsEnded lists the streams whose end the batch applied (Streams; not carried).
	streamsEnded []string
	security     map[string]*securityRow
	sessions     map[string]*sessionChange // the sessions projection's changes of the batch
	// The activity projection's rows of the batch, its sessions (nil: removed) and the
	// client names looked up (table and id: name).
	activityRows     []activityRow
	activitySessions map[string]*sessionInfo
	clientNames      map[string]string
	signIns          [][]any          // the sign-in history's rows of the batch
	orgLogins        map[string]int64 // the people's latest own sign-ins of the batch (Orgs)
	// raw, set in a rebuild's lane, runs txExec's statements (see rawExec).
	raw *rawExec
	// keep, set while Applier.Apply writes the batch's rows at its end, asks the projections
	// to keep the maps above (not the rows) for the next batch (Applier.carry).
	keep bool
}

// carried returns how many rows the maps that a batch may keep for the next hold.
func (st *txState) carried() int {
	return len(st.streams) + len(st.security) + len(st.sessions) + len(st.activitySessions) + len(st.orgLogins)
}

type batchKey struct{}

// next returns the state of a batch in tx that takes over st's maps (Applier.carry).
func (st *txState) next(tx *sql.Tx) *txState {
	return &txState{tx: tx, stmts: map[string]*sql.Stmt{}, streams: st.streams, security: st.security,
		sessions: st.sessions, activitySessions: st.activitySessions, clientNames: st.clientNames, orgLogins: st.orgLogins}
}

// withBatch returns ctx carrying a fresh state for the batch Applier.Apply runs in tx: its
// prepared statements and the rows projections build in memory (batchWriter).
func withBatch(ctx context.Context, tx *sql.Tx) context.Context {
	return context.WithValue(ctx, batchKey{}, &txState{tx: tx, stmts: map[string]*sql.Stmt{}})
}

// inBatch reports whether ctx is that of Applier.Apply on tx, which calls writeBatch at the
// end of the batch.
func inBatch(ctx context.Context, tx *sql.Tx) bool {
	b, ok := ctx.Value(batchKey{}).(*txState)
	return ok && b.tx == tx
}

// stateOf returns the state of tx, creating it: the batch's own when ctx is that of
// Applier.Apply on tx (withBatch; never forgotten while the batch runs), else one kept in
// preparedCache.
func stateOf(ctx context.Context, tx *sql.Tx) *txState {
	if b, ok := ctx.Value(batchKey{}).(*txState); ok && b.tx == tx {
		return b
	}
	preparedCache.Lock()
	defer preparedCache.Unlock()
	st := preparedCache.m[tx]
	if st == nil {
		if len(preparedCache.m) >= preparedTxs {
			clear(preparedCache.m)
		}
		st = &txState{stmts: map[string]*sql.Stmt{}}
		preparedCache.m[tx] = st
	}
	return st
}

// prepared returns query prepared in tx, preparing it on first use. A transaction is used by
// one goroutine at a time (the batch that owns it), so its state needs no lock of its own.
func prepared(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	return stateOf(ctx, tx).prepare(ctx, tx, query)
}

// prepare is prepared for the state ts of tx.
func (ts *txState) prepare(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st := ts.stmts[query]; st != nil {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ts.stmts[query] = st
	return st, nil
}

// txExec is tx.ExecContext with the statement prepared once per transaction, or, in a
// rebuild's lane, run through SQLite's own interface (rawExec).
func txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	ts := stateOf(ctx, tx)
	if ts.raw != nil && !hasNamed(args) {
		return ts.raw.exec(query, args)
	}
	st, err := ts.prepare(ctx, tx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

// hasNamed reports whether args holds a named argument (sql.Named), which only
// database/sql binds here.
func hasNamed(args []any) bool {
	for _, a := range args {
		if _, ok := a.(sql.NamedArg); ok {
			return true
		}
	}
	return false
}

// txScan runs a one-row query with the statement prepared once per transaction and scans
// it into dest; no row is sql.ErrNoRows.
func txScan(ctx context.Context, tx *sql.Tx, query string, args []any, dest ...any) error {
	st, err := prepared(ctx, tx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}
