package domain

import "time"

// Shared Signals events: the streams of the SSF transmitter (API.md "Shared Signals"), one
// per receiver, each with its own stream system-ssf-stream-<id>. Every change appends one
// SSFStreamChanged holding the whole configuration after it, so the last event of the
// stream is the stream as it stands, on every instance and after any restart.

// EventSSFStreamChanged is the type name of SSFStreamChanged.
const EventSSFStreamChanged = "SSFStreamChanged"

// SSFStreamChanged records a change of a Shared Signals stream: Change is "created",
// "updated" (delivery, events requested or description), "status" (enabled, paused,
// disabled, with Reason), "verification" (a receiver asked for a verification event
// carrying State) or "deleted" (the stream's last event). The other members are the stream's
// configuration after the change.
type SSFStreamChanged struct {
	StreamID        string    `json:"stream_id"`
	Change          string    `json:"change"`
	Audience        string    `json:"aud"`
	DeliveryMethod  string    `json:"delivery_method"`
	EndpointURL     string    `json:"endpoint_url,omitempty"`
	EventsRequested []string  `json:"events_requested"`
	Description     string    `json:"description,omitempty"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	State           string    `json:"state,omitempty"`
	At              time.Time `json:"at"`
}

// eventType implements Event: "SSFStreamChanged".
func (SSFStreamChanged) eventType() string { return EventSSFStreamChanged }

// SSFStream returns the stream id of a Shared Signals stream: "system-ssf-stream-<id>".
func SSFStream(streamID string) string { return StreamPrefixSystem + "ssf-stream-" + streamID }
