// Package export turns stored events into the formats Vigil hands to compliance tools: the
// CloudEvents 1.0 structured JSON of the event stream (GET /api/v1/events, the SSE stream and
// the forwarders) and OCSF 1.x records for SIEMs that ingest OCSF, and redacts event data
// (Redact) for every one of them and for the audit API. It is pure: no I/O, safe for
// concurrent use, and it imports only the domain's envelope and event registry.
package export

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/eventtype"
)

// CloudEvents constants of Vigil's events.
const (
	// SpecVersion is the CloudEvents version Vigil writes.
	SpecVersion = "1.0"
	// TypePrefix prefixes the event type name to make the CloudEvents type
	// ("vigil.LoginSucceeded").
	TypePrefix = "vigil."
	// DataContentType is the media type of every event's data.
	DataContentType = "application/json"
	// ContentType is the media type of one structured-mode CloudEvent
	// (CloudEvents JSON format §3).
	ContentType = "application/cloudevents+json"
	// DefaultSource is the source used when none is configured.
	DefaultSource = "urn:vigil"
)

// CloudEventJSON is one event in CloudEvents 1.0 structured mode (JSON event format).
//
// Vigil's choices where the specification leaves room:
//   - id is the event id (a UUIDv7, unique across the log): together with source it
//     identifies the event, so consumers can drop duplicates.
//   - subject is the event's stream id ("account-<id>", "session-<id>", "system-signin",
//     ...): always present, and what the event is about within Vigil.
//   - vigilposition is the event's global position as a decimal string. The CloudEvents
//     Integer type is 32-bit, too small for positions (KurrentDB positions are byte
//     offsets), so the attribute is a String; it is the SSE `id:` and the `after` of the
//     paged endpoint.
//   - vigilhash is the event's chain hash (API.md "Integrity of the log"): lowercase hex
//     SHA-256 over the previous event's hash and this event's canonical bytes as stored.
//     The stored bytes hold personal members sealed, so a consumer checks the hash against
//     a signed checkpoint or a `vigil log export`, not by rehashing this JSON.
//   - vigilaccount is the subject account id when the event has one (absent otherwise), for
//     routing and filtering without parsing data.
//   - data is an EventData: the stored data redacted by Redact (every member not declared
//     public or personal in the domain registry is "[redacted]"), plus
//     the envelope's stream version, schema version and metadata (actor, IP, user agent,
//     client, correlation).
type CloudEventJSON struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject"`
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
	VigilPosition   string    `json:"vigilposition"`
	VigilHash       string    `json:"vigilhash,omitempty"`
	VigilAccount    string    `json:"vigilaccount,omitempty"`
}

// EventData is the `data` of Vigil's CloudEvents.
type EventData struct {
	// Stream and StreamVersion place the event in its stream (version is 1-based).
	Stream        string `json:"stream"`
	StreamVersion uint64 `json:"stream_version"`
	// SchemaVersion is the version of Data's shape for this event type.
	SchemaVersion int `json:"schema_version"`
	// Data is the event's data as stored, with every member that is not declared public or
	// personal replaced by "[redacted]" (see Redact).
	Data json.RawMessage `json:"data"`
	// Metadata is the envelope's metadata: actor, subject account, IP, user agent, client,
	// correlation and causation ids.
	Metadata domain.Metadata `json:"metadata"`
}

// CloudEvent returns the CloudEvents form of e. source is the CloudEvents source
// (a URI-reference naming this Vigil deployment, e.g. its public URL); empty means
// DefaultSource.
func CloudEvent(e domain.Envelope, source string) CloudEventJSON {
	if source == "" {
		source = DefaultSource
	}
	data := Redact(e.Type, e.SchemaVersion, e.Data)
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return CloudEventJSON{
		SpecVersion:     SpecVersion,
		ID:              e.ID,
		Source:          source,
		Type:            TypePrefix + e.Type,
		Time:            e.RecordedAt.UTC(),
		Subject:         e.StreamID,
		DataContentType: DataContentType,
		Data: EventData{
			Stream: e.StreamID, StreamVersion: e.Version, SchemaVersion: e.SchemaVersion,
			Data: data, Metadata: e.Metadata,
		},
		VigilPosition: strconv.FormatUint(e.Position, 10),
		VigilHash:     e.Hash,
		VigilAccount:  e.Metadata.SubjectAccountID,
	}
}

// MarshalCloudEvent returns the structured-mode JSON of e (see CloudEvent), one object
// without a trailing newline.
func MarshalCloudEvent(e domain.Envelope, source string) ([]byte, error) {
	return json.Marshal(CloudEvent(e, source))
}

// Redacted replaces a redacted value.
const Redacted = "[redacted]"

var redactedJSON = json.RawMessage(`"` + Redacted + `"`)

// Redact returns an event's data (a JSON object of type eventType at schemaVersion, as
// stored) as it may leave the service: deny-by-default, through the one declaration of each
// event's fields in the domain registry (domain.Catalog().Fields).
//
//   - A member declared public or personal is kept as stored (personal data is still shown in
//     clear; sealing it is a later step).
//   - A member declared secret, or not declared at all, is replaced whole: an array by an
//     array of "[redacted]" of the same length (counts stay visible), anything else (string,
//     number, object) by "[redacted]".
//   - For a type or schema version the registry does not know, every member is redacted.
//   - Data that is not a JSON object (malformed, a bare string, an array) becomes
//     "[redacted]"; empty data and null are returned as they are.
//
// Old schema versions are redacted in the shape they were stored in, with that version's
// declaration. Redact is pure and safe for concurrent use.
func Redact(eventType string, schemaVersion int, data json.RawMessage) json.RawMessage {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return data
	}
	fields, known := domain.Catalog().Fields(eventType, schemaVersion)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return redactedJSON
	}
	changed := false
	for k, v := range m {
		if !known || fields.Class(k) == eventtype.FieldSecret {
			m[k] = redactValue(v)
			changed = true
		}
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(m)
	if err != nil {
		return redactedJSON
	}
	return out
}

// redactValue replaces one member's value: an array element by element, anything else whole.
func redactValue(v json.RawMessage) json.RawMessage {
	var arr []json.RawMessage
	if json.Unmarshal(v, &arr) == nil && arr != nil {
		out := make([]string, len(arr))
		for i := range out {
			out[i] = Redacted
		}
		b, _ := json.Marshal(out)
		return b
	}
	return redactedJSON
}

// RedactEnvelope returns e with its Data passed through Redact: the raw event as the audit
// API and the portal's audit timeline show it. Metadata is kept whole (the IP address and
// the user agent, personal data, travel there, not in data).
func RedactEnvelope(e domain.Envelope) domain.Envelope {
	e.Data = Redact(e.Type, e.SchemaVersion, e.Data)
	return e
}
