package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
)

// TestSSFRotateKey: the command replaces the key of the default file, keeping the old public
// key in the JWK set; without a key file it fails naming the flag; a bad --ssf-signing-key-file
// stops serve with one line naming it.
func TestSSFRotateKey(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(t, "ssf", "rotate-key", "--data-dir", dir); code != cli.ExitFailure || !strings.Contains(errOut, "--ssf-signing-key-file") {
		t.Fatalf("without a key: %d %s", code, errOut)
	}
	path := filepath.Join(dir, "ssf-signing.key")
	old, _, err := ssf.EnsureKeys(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "ssf", "rotate-key", "--data-dir", dir)
	if code != cli.ExitOK {
		t.Fatalf("rotate: %d %s %s", code, out, errOut)
	}
	k, err := ssf.LoadKeys(path)
	if err != nil || k.ActiveKeyID() == old.ActiveKeyID() || !strings.Contains(out, k.ActiveKeyID()) {
		t.Fatalf("after rotate: %v %q", err, out)
	}
	if n := len(k.JWKS(time.Now()).Keys); n != 2 {
		t.Fatalf("%d keys in the JWK set", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseServe([]string{"--ssf-signing-key-file", bad}, envMap()); err == nil || !strings.Contains(err.Error(), "--ssf-signing-key-file") {
		t.Fatalf("a bad key file: %v", err)
	}
}
