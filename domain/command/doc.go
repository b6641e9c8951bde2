// Package command is Vigil's application layer: Service runs the account, sign-in,
// session, organisation, delegation, passkey and webhook commands and queries, and
// ServiceTokens the service token ones. Each command authorises the caller against the
// in-memory indexes (SessionIndex, OrgIndex, the delegation and service token indexes),
// loads the aggregates of package domain from the event store, lets them decide, appends
// their events with the expected stream version (retrying on a conflict) and updates the
// indexes before it returns. The events, aggregates and their decisions are package
// domain's; this package imports domain, never the other way round.
package command
