package domain

// The command layer (package domain/command) keeps the last state of organisations,
// delegations and sessions in memory and advances it with the events it has just appended
// or read from the log. Next and Fold do that for any of these aggregates without opening
// their fields: the state changes only through the aggregate's own apply.

// advancer is an aggregate that Next can advance: a copy to change, one event applied, the
// version set (*Org, *Delegation, *SessionRecord).
type advancer[A any] interface {
	copyState() A
	apply(e Event) error
	setVersion(version uint64)
}

// folder is an advancer that also applies a stored envelope checking that it continues the
// stream (*Org, *Delegation).
type folder[A any] interface {
	advancer[A]
	applyEnvelope(env Envelope) error
}

// Next returns a copy of a with events applied, the last of them at version: the state
// after a command appended events to a's stream. a itself is unchanged (the in-memory
// indexes share published states read-only). With no events it is a copy of a at version.
func Next[A advancer[A]](a A, events []Event, version uint64) (A, error) {
	next := a.copyState()
	for _, e := range events {
		if err := next.apply(e); err != nil {
			var none A
			return none, err
		}
	}
	next.setVersion(version)
	return next, nil
}

// Fold returns a copy of a with one stored envelope applied, which must continue a's stream
// (else an error: a stream gap, or an event that does not belong there). a is unchanged.
func Fold[A folder[A]](a A, env Envelope) (A, error) {
	next := a.copyState()
	if err := next.applyEnvelope(env); err != nil {
		var none A
		return none, err
	}
	return next, nil
}

// NewOrg returns the state of organisation id before its first event (start Next or Fold of
// a new organisation with it).
func NewOrg(id string) *Org { return &Org{id: id, members: map[string]string{}} }

func (o *Org) copyState() *Org { return o.clone() }

func (o *Org) setVersion(version uint64) { o.version = version }

func (d *Delegation) copyState() *Delegation {
	c := *d
	return &c
}

func (d *Delegation) setVersion(version uint64) { d.version = version }

// NewSessionRecord returns the state of session id before its first event (start Next of a
// new session with it).
func NewSessionRecord(id string) *SessionRecord { return &SessionRecord{sess: Session{ID: id}} }

func (r *SessionRecord) copyState() *SessionRecord {
	c := *r
	c.sess = r.sess.clone()
	return &c
}

func (r *SessionRecord) setVersion(version uint64) { r.version = version }

// Rebuild is the one function that rebuilds an aggregate (*Account, *Org, *Delegation or
// *SessionRecord) from its stream id: events from version 1 on, in order, starting with the
// aggregate's first event. It fails on a gap in versions or an event that does not belong
// on that stream, and an empty stream is ErrNotFound (ErrSessionNotFound for a session).
// Each aggregate's own rebuild function (rebuildAccount, ...) says what it checks.
func Rebuild[A *Account | *Org | *Delegation | *SessionRecord](id string, events []Envelope) (A, error) {
	var (
		a   any
		err error
	)
	switch any(*new(A)).(type) {
	case *Account:
		a, err = rebuildAccount(id, events)
	case *Org:
		a, err = rebuildOrg(id, events)
	case *Delegation:
		a, err = rebuildDelegation(id, events)
	case *SessionRecord:
		a, err = rebuildSession(id, events)
	}
	if err != nil {
		var none A
		return none, err
	}
	return a.(A), nil
}
