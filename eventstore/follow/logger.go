package follow

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// slogLogger is Watermill's slog adapter that asks the logger whether a level is on before
// it turns the fields into attributes: Watermill traces every message its router and the
// bridge pass (several calls per event, each building its fields), which cost about 8 % of
// a follower's CPU while it caught up with the log with tracing off (issue 16's profile).
type slogLogger struct {
	watermill.LoggerAdapter
	log *slog.Logger
}

// newSlogLogger adapts log for Watermill.
func newSlogLogger(log *slog.Logger) watermill.LoggerAdapter {
	return slogLogger{LoggerAdapter: watermill.NewSlogLogger(log), log: log}
}

func (l slogLogger) Debug(msg string, fields watermill.LogFields) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.LoggerAdapter.Debug(msg, fields)
	}
}

func (l slogLogger) Trace(msg string, fields watermill.LogFields) {
	if l.log.Enabled(context.Background(), watermill.LevelTrace) {
		l.LoggerAdapter.Trace(msg, fields)
	}
}

func (l slogLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return slogLogger{LoggerAdapter: l.LoggerAdapter.With(fields), log: l.log}
}
