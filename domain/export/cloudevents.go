// Package export turns stored events into the formats Vigil hands to compliance tools: the
// CloudEvents 1.0 structured JSON of the event stream (GET /api/v1/events, the SSE stream and
// the forwarders) and OCSF 1.x records for SIEMs that ingest OCSF. It is pure: no I/O, safe for
// concurrent use, and it imports only the domain's envelope.
package export

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/vigil-auth/vigil/domain"
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
//   - vigilaccount is the subject account id when the event has one (absent otherwise), for
//     routing and filtering without parsing data.
//   - data is an EventData: the stored data with credential material redacted, plus
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
	VigilAccount    string    `json:"vigilaccount,omitempty"`
}

// EventData is the `data` of Vigil's CloudEvents.
type EventData struct {
	// Stream and StreamVersion place the event in its stream (version is 1-based).
	Stream        string `json:"stream"`
	StreamVersion uint64 `json:"stream_version"`
	// SchemaVersion is the version of Data's shape for this event type.
	SchemaVersion int `json:"schema_version"`
	// Data is the event's data as stored, with credential material (RedactedKeys) replaced
	// by "[redacted]".
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
	data := Redact(e.Data)
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
		VigilAccount:  e.Metadata.SubjectAccountID,
	}
}

// MarshalCloudEvent returns the structured-mode JSON of e (see CloudEvent), one object
// without a trailing newline.
func MarshalCloudEvent(e domain.Envelope, source string) ([]byte, error) {
	return json.Marshal(CloudEvent(e, source))
}

// RedactedKeys are the members of event data that hold credential material (argon2id
// password hashes, session and service token hashes, backup code hashes, sealed TOTP
// secrets). Exported events show that they are there, never what they are.
var RedactedKeys = []string{"password_hash", "token_hash", "code_hashes", "secret"}

// Redacted replaces a redacted value.
const Redacted = "[redacted]"

// Redact returns data (an event's JSON object) with the RedactedKeys members replaced by
// "[redacted]" (each element of an array, so that counts stay visible). Data without such
// a member, or that is not an object, is returned unchanged.
func Redact(data json.RawMessage) json.RawMessage {
	found := false
	for _, k := range RedactedKeys {
		if bytes.Contains(data, []byte(`"`+k+`"`)) {
			found = true
			break
		}
	}
	if !found {
		return data
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return data
	}
	changed := false
	for _, k := range RedactedKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) == nil {
			out := make([]string, len(arr))
			for i := range out {
				out[i] = Redacted
			}
			m[k], _ = json.Marshal(out)
		} else {
			m[k], _ = json.Marshal(Redacted)
		}
		changed = true
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}
