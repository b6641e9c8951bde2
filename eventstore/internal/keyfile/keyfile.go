// Package keyfile writes the JSON key files of the log's checkpoint signer and the Shared
// Signals transmitter the one safe way: mode 0600, through a synced temporary file, so that a
// crash never leaves half a key.
package keyfile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
)

// Ensure loads the key file at path, making it with a fresh key when it does not exist:
// fresh draws the file's content, open turns it into keys, load reads an existing file.
// Created says this call made the file; when another process made it meanwhile, its key is
// loaded (the exclusive Write never overwrites it).
func Ensure[F, K any](path string, load func(string) (K, error), fresh func() (F, error), open func(F) (K, error)) (k K, created bool, err error) {
	k, err = load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	f, err := fresh()
	if err != nil {
		return k, false, err
	}
	if err := Write(path, f, true); err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it meanwhile
			k, err = load(path)
			return k, false, err
		}
		return k, false, err
	}
	k, err = open(f)
	return k, err == nil, err
}

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
