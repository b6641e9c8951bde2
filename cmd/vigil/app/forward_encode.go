package app

import (
	"encoding/json"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// forwardEncode is a PLACEHOLDER encoder for the forwarders (NATS, webhooks): a minimal
// CloudEvents 1.0 structured-mode JSON of one event with the vigilposition extension. The
// compliance stream's encoder (eventstore/export, issue 6 part A) replaces it at merge; the
// forwarders take whatever func(domain.Envelope) ([]byte, error) is passed here.
func forwardEncode(ev domain.Envelope) ([]byte, error) {
	subject := ev.Metadata.SubjectAccountID
	return json.Marshal(struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Time            string          `json:"time"`
		Subject         string          `json:"subject,omitempty"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
		VigilPosition   uint64          `json:"vigilposition"`
	}{
		SpecVersion: "1.0", ID: ev.ID, Source: "/vigil/" + ev.StreamID, Type: "vigil." + ev.Type,
		Time: ev.RecordedAt.UTC().Format(time.RFC3339Nano), Subject: subject,
		DataContentType: "application/json", Data: ev.Data, VigilPosition: ev.Position,
	})
}
