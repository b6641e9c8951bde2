package projections

import (
	"encoding/json"
	"strings"

	"github.com/vigil-auth/vigil/domain"
)

// signalNames are the risk signals in words.
var signalNames = map[string]string{
	domain.SignalNewDevice:        "new device",
	domain.SignalNewCountry:       "new country",
	domain.SignalImpossibleTravel: "impossible travel",
}

// SignalName is a risk signal in words ("impossible travel"); an unknown one as it is.
func SignalName(signal string) string {
	if n, ok := signalNames[signal]; ok {
		return n
	}
	return signal
}

// describeSignInRisk describes SignInRiskDetected ("Unusual sign-in: new device, new
// country") and marks the sign-in it is about: the LoginSucceeded row of the account with
// id login_event_id gets the signals in its details, so that the activity page can show a
// badge on the sign-in itself. The detector records the event soon after the sign-in, so the
// row is found among the account's newest.
func describeSignInRisk(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.SignInRiskDetected)
	if !ok {
		return "", nil, unexpected(in)
	}
	words := make([]string, len(e.Signals))
	for i, s := range e.Signals {
		words[i] = SignalName(s)
	}
	d := details{"session_id": e.SessionID, "login_event_id": e.LoginEventID, "signals": nonNil(e.Signals)}
	if e.Country != "" {
		d["country"] = e.Country
	}
	if e.PreviousCountry != "" {
		d["previous_country"] = e.PreviousCountry
	}
	if e.SpeedKMH > 0 {
		d["speed_kmh"] = e.SpeedKMH
	}
	if e.Device != "" {
		d["device"] = e.Device
	}
	if e.LoginEventID != "" && in.account != "" {
		sig, err := json.Marshal(nonNil(e.Signals))
		if err != nil {
			return "", nil, err
		}
		if err := flushActivity(in.ctx, in.tx); err != nil { // the sign-in's row may be in memory
			return "", nil, err
		}
		err = txExec(in.ctx, in.tx, `UPDATE activity SET details = json_set(details, '$.signals', json(?))
			WHERE position = (SELECT position FROM activity WHERE account_id = ? AND id = ? AND type = ?
				ORDER BY position DESC LIMIT 1)`, string(sig), in.account, e.LoginEventID, domain.EventLoginSucceeded)
		if err != nil {
			return "", nil, err
		}
	}
	return "Unusual sign-in: " + strings.Join(words, ", "), d, nil
}
