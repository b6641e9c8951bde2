package api

import (
	"context"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// ReadModels is the part of the read models the handlers query (*projections.DB
// satisfies it). Each call sees the last committed batch of the projections.
type ReadModels interface {
	ActiveSessions(ctx context.Context, accountID string, limit int, cursor string) ([]projections.SessionRow, string, error)
	SessionOwner(ctx context.Context, sessionID string) (accountID string, ok bool, err error)
	Activity(ctx context.Context, f projections.ActivityFilter) ([]projections.ActivityRow, string, error)
	ActivityEntry(ctx context.Context, accountID, id string) (projections.ActivityRow, bool, error)
}

// EventLog is the part of the event log the audit reads (eventstore.Store satisfies it).
type EventLog interface {
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error)
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// SubjectReader is a log that can read the events whose metadata subject is an account
// without scanning the whole log (the SQLite store's ReadSubject): up to limit events after
// global position after, in global order.
type SubjectReader interface {
	ReadSubject(ctx context.Context, accountID string, after uint64, limit int) ([]domain.Envelope, error)
}

// subjectReaderOf returns the configured SubjectReader, else log's own, else nil.
func subjectReaderOf(cfg Config) SubjectReader {
	if cfg.Subjects != nil {
		return cfg.Subjects
	}
	if sr, ok := cfg.Log.(SubjectReader); ok {
		return sr
	}
	return nil
}

// Config is what the JSON API serves besides the accounts (Config's fields of the same
// names).
type Config struct {
	ReadModels    ReadModels
	Log           EventLog
	Subjects      SubjectReader
	ServiceTokens ServiceTokens // nil: no service token administration
	Webhooks      WebhookAdmin
	LogIntegrity  LogIntegrity // nil: the log's keys and checkpoints are not served
	// ReadModelSnapshots: nil, GET /admin/read-models/snapshot is not served.
	ReadModelSnapshots ReadModelSnapshots
}

// API is the JSON API of accounts, sessions, organisations, the security teams and the
// administration (/api/v1/...).
type API struct {
	*web.Core
	svc Service

	// The read side (nil reads: not served).
	Reads    ReadModels
	Events   EventLog
	Subjects SubjectReader // nil: the audit scans ReadAll
	// scanBatch and scanMax bound that scan (eventsScanBatch, eventsScanMax).
	scanBatch, scanMax int

	serviceTokens ServiceTokens      // nil: no service token administration
	webhooks      WebhookAdmin       // nil: no webhook routes
	logIntegrity  LogIntegrity       // nil: no /log routes
	snapshots     ReadModelSnapshots // nil: no read-model snapshot route
}

// New builds the JSON API on k, running svc's commands.
func New(k *web.Core, svc Service, cfg Config) *API {
	s := &API{Core: k, svc: svc, scanBatch: eventsScanBatch, scanMax: eventsScanMax,
		serviceTokens: cfg.ServiceTokens, webhooks: cfg.Webhooks, logIntegrity: cfg.LogIntegrity,
		snapshots: cfg.ReadModelSnapshots}
	if cfg.ReadModels != nil && cfg.Log != nil {
		s.Reads, s.Events, s.Subjects = cfg.ReadModels, cfg.Log, subjectReaderOf(cfg)
	}
	return s
}

// routes defines the API's component schemas and returns its routes: those of the read
// side, the service tokens and the webhooks only when they are served.
func (s *API) Routes() []web.Route {
	s.defineAPISchemas()
	if s.Reads != nil {
		s.defineReadSchemas()
	}
	var routes []web.Route
	routes = append(routes, s.accountRoutes()...)
	routes = append(routes, s.meRoutes()...)
	routes = append(routes, s.totpRoutes()...)
	routes = append(routes, s.passkeyRoutes()...)
	routes = append(routes, s.adminRoutes()...)
	routes = append(routes, s.orgRoutes()...)
	routes = append(routes, s.recoveryRoutes()...)
	if s.serviceTokens != nil {
		routes = append(routes, s.serviceTokenRoutes()...)
	}
	if s.webhooks != nil {
		s.defineWebhookSchemas()
		routes = append(routes, s.webhookRoutes()...)
	}
	if s.logIntegrity != nil {
		routes = append(routes, s.logRoutes()...)
	}
	if s.snapshots != nil {
		routes = append(routes, s.readModelRoutes()...)
	}
	if s.Reads != nil {
		routes = append(routes, s.readRoutes()...)
		routes = append(routes, s.auditRoutes()...)
	}
	return routes
}
