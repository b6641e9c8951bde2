// Package keyfile writes the JSON key files of the log's checkpoint signer and the Shared
// Signals transmitter the one safe way: mode 0600, through a synced temporary file, so that a
// crash never leaves half a key.
package keyfile

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Write writes v as indented JSON to path with mode 0600 through a temporary file and a
// rename; exclusive refuses (os.ErrExist) when path exists, through a hard link, so that no
// second process overwrites the first's key.
func Write(path string, v any, exclusive bool) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		return os.Link(tmp.Name(), path)
	}
	return os.Rename(tmp.Name(), path)
}
