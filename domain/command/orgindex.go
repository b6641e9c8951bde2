package command

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// OrgIndex is the in-memory directory of organisations: every organisation's state, the
// organisations each account belongs to and the organisations that manage each one. It
// answers the 2FA policy at sign-in (RequiredBy) with a few map lookups, so that sign-in
// time does not grow with the number of organisations, and the authorization of the
// organisation read routes. It is safe for concurrent use.
//
// Like SessionIndex it has two feeds: the Service's commands publish the organisation they
// just appended to (so a policy change applies to the next sign-in on this instance before
// the command returns), and Apply takes the log's org-<id> events, for the changes of other
// instances. Each organisation remembers the stream version it reflects; older or repeated
// envelopes are ignored, so every instance converges on the log.
type OrgIndex struct {
	mu        sync.RWMutex
	orgs      map[string]*domain.Org
	byAccount map[string]map[string]struct{} // account -> org ids
	managers  map[string]map[string]struct{} // managed org -> managing org ids
	// requiring counts the organisations whose policy requires 2FA: while none does (the
	// common case), RequiredBy answers without the lock, which every whoami of an aal1
	// session would otherwise take.
	requiring atomic.Int64
}

var _ TwoFactorPolicy = (*OrgIndex)(nil)

// NewOrgIndex returns an empty directory.
func NewOrgIndex() *OrgIndex {
	return &OrgIndex{orgs: map[string]*domain.Org{}, byAccount: map[string]map[string]struct{}{},
		managers: map[string]map[string]struct{}{}}
}

// RequiredBy implements TwoFactorPolicy: the ids (sorted) of the organisations whose policy
// applies to accountID and requires 2FA: each organisation it belongs to that requires it,
// and each organisation managing one it belongs to that requires it. Never an error.
func (x *OrgIndex) RequiredBy(_ context.Context, accountID string) ([]string, error) {
	if x.requiring.Load() == 0 {
		return nil, nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for id := range x.byAccount[accountID] {
		if o := x.orgs[id]; o != nil && o.TwoFactorRequired() {
			out = append(out, id)
		}
		for m := range x.managers[id] {
			if o := x.orgs[m]; o != nil && o.TwoFactorRequired() {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// Get returns the organisation as the directory knows it (a shared, read-only value).
func (x *OrgIndex) Get(orgID string) (*domain.Org, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	o := x.orgs[orgID]
	return o, o != nil
}

// OrgsOf returns the ids of the organisations accountID belongs to, sorted.
func (x *OrgIndex) OrgsOf(accountID string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.byAccount[accountID]))
	for id := range x.byAccount[accountID] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Apply feeds one envelope from the log. Envelopes of other streams are ignored, and so
// are those the directory already reflects. An org event that does not continue the held
// state (a gap) or cannot be decoded is an error; the state is left as it was.
func (x *OrgIndex) Apply(env domain.Envelope) error {
	id, ok := strings.CutPrefix(env.StreamID, domain.StreamPrefixOrg)
	if !ok {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.orgs[id]
	if cur != nil && env.Version <= cur.Version() {
		return nil
	}
	base := cur
	if base == nil {
		base = domain.NewOrg(id)
	}
	next, err := domain.Fold(base, env)
	if err != nil {
		return err
	}
	x.putLocked(cur, next)
	return nil
}

// publish records the state of an organisation a command has just written (newer than the
// held one replaces it).
func (x *OrgIndex) publish(o *domain.Org) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.orgs[o.ID()]
	if cur != nil && o.Version() <= cur.Version() {
		return
	}
	x.putLocked(cur, o)
}

func (x *OrgIndex) putLocked(old, next *domain.Org) {
	id := next.ID()
	if old != nil && old.TwoFactorRequired() {
		x.requiring.Add(-1)
	}
	if next.TwoFactorRequired() {
		x.requiring.Add(1)
	}
	if old != nil {
		for _, a := range old.Members() {
			if next.Role(a) == "" {
				if m := x.byAccount[a]; m != nil {
					delete(m, id)
					if len(m) == 0 {
						delete(x.byAccount, a)
					}
				}
			}
		}
	}
	for _, a := range next.Members() {
		m := x.byAccount[a]
		if m == nil {
			m = map[string]struct{}{}
			x.byAccount[a] = m
		}
		m[id] = struct{}{}
	}
	for _, managed := range next.ManagedOrgs() {
		m := x.managers[managed]
		if m == nil {
			m = map[string]struct{}{}
			x.managers[managed] = m
		}
		m[id] = struct{}{}
	}
	x.orgs[id] = next
}

// delegationIndex is the in-memory list of delegations: by id and by account (as owner and
// as delegate). It answers GET /me/delegations and tells the sweeper which delegations to
// expire. Fed like OrgIndex: by this instance's commands and by Apply from the log. Safe for
// concurrent use.
type delegationIndex struct {
	mu        sync.RWMutex
	byID      map[string]*domain.Delegation
	byAccount map[string]map[string]struct{}
}

// newDelegationIndex returns an empty index.
func newDelegationIndex() *delegationIndex {
	return &delegationIndex{byID: map[string]*domain.Delegation{}, byAccount: map[string]map[string]struct{}{}}
}

// apply feeds one envelope from the log; other streams and envelopes already reflected
// are ignored. A gap or an undecodable event is an error.
func (x *delegationIndex) apply(env domain.Envelope) error {
	id, ok := strings.CutPrefix(env.StreamID, domain.StreamPrefixDelegation)
	if !ok {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.byID[id]
	if cur != nil && env.Version <= cur.Version() {
		return nil
	}
	base := cur
	if base == nil {
		base = &domain.Delegation{ID: id}
	}
	next, err := domain.Fold(base, env)
	if err != nil {
		return err
	}
	x.putLocked(next)
	return nil
}

func (x *delegationIndex) publish(d *domain.Delegation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur := x.byID[d.ID]; cur != nil && d.Version() <= cur.Version() {
		return
	}
	c, _ := domain.Next(d, nil, d.Version()) // a copy: no event to apply
	x.putLocked(c)
}

func (x *delegationIndex) putLocked(d *domain.Delegation) {
	x.byID[d.ID] = d
	for _, a := range []string{d.OwnerAccountID, d.DelegateAccountID} {
		m := x.byAccount[a]
		if m == nil {
			m = map[string]struct{}{}
			x.byAccount[a] = m
		}
		m[d.ID] = struct{}{}
	}
}

// get returns a copy of the delegation with this id, if the index holds it.
func (x *delegationIndex) get(id string) (domain.Delegation, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	d := x.byID[id]
	if d == nil {
		return domain.Delegation{}, false
	}
	return *d, true
}

// activeFor returns the delegations accountID granted or received that are active at now,
// soonest expiry first (ties by id).
func (x *delegationIndex) activeFor(accountID string, now time.Time) []domain.Delegation {
	x.mu.RLock()
	out := make([]domain.Delegation, 0, len(x.byAccount[accountID]))
	for id := range x.byAccount[accountID] {
		if d := x.byID[id]; d != nil && d.ActiveAt(now) {
			out = append(out, *d)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b domain.Delegation) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// due returns the ids of delegations not ended whose time has passed at now.
func (x *delegationIndex) due(now time.Time) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var ids []string
	for id, d := range x.byID {
		if !d.Ended && !now.Before(d.ExpiresAt) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}
