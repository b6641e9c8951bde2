package domain

import "encoding/json"

// AccountStateJSON exposes the whole state of an account to the external tests, to compare
// a snapshot-based load with a full replay.
func AccountStateJSON(a *Account) string {
	b, err := json.Marshal(a.s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
