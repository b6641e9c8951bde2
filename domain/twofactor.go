package domain

import (
	"io"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
)

// The glue between the aggregates and the credential primitives of package credential.

// NewBackupCodeSet draws a fresh set: the event to append and the codes to show once.
func NewBackupCodeSet(r io.Reader, now time.Time) (BackupCodesGenerated, []string, error) {
	codes, err := credential.GenerateBackupCodes(r, credential.BackupCodeCount)
	if err != nil {
		return BackupCodesGenerated{}, nil, err
	}
	ev := BackupCodesGenerated{SetID: NewID(), At: now}
	for _, c := range codes {
		ev.CodeHashes = append(ev.CodeHashes, credential.HashBackupCode(ev.SetID, credential.NormalizeBackupCode(c)))
	}
	return ev, codes, nil
}

// matchBackupCode returns the index of an unused code of set equal to code, comparing
// against every hash in constant time.
func matchBackupCode(set *backupCodeSet, code string) (int, bool) {
	if set == nil {
		return 0, false
	}
	return credential.MatchBackupCode(set.SetID, set.Hashes, set.Used, code)
}
