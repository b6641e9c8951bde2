package domain

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// NewID returns a new UUIDv7 string: time-ordered, so ids sort roughly by creation time and
// index well. It panics only if the operating system's random source fails.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// NewEventData marshals data into an EventData of the given type and schema version with a
// fresh UUIDv7 id. It returns an error only when data cannot be marshalled to JSON.
func NewEventData(eventType string, schemaVersion int, data any, md Metadata) (EventData, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return EventData{}, fmt.Errorf("marshal %s: %w", eventType, err)
	}
	return EventData{ID: NewID(), Type: eventType, SchemaVersion: schemaVersion, Data: raw, Metadata: md}, nil
}
