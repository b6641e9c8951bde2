package app

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestEraseMeLeavesNoTrace: the log never holds the personal values in clear (sealed before
// the append); after DELETE /api/v1/me and a clean stop no file of the data directory holds
// the erased email, names or user agent (the read models forgot them, the WAL files are folded
// back); the other account is untouched; the email can be registered again.
func TestEraseMeLeavesNoTrace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clk := testkit.NewClock(time.Now().UTC())
	base, stop := startApp(t, dir, clk)
	const pw = "umbrella-cactus-violin-47"
	secrets := []string{"erin.zedquux@example.com", "Erinzedquux", "Quuxleyvane", "ErasureProbe/9.9"}
	register := func(email, first, last, ua string) string {
		t.Helper()
		if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"`+email+`","password":"`+pw+`","first_name":"`+first+`","last_name":"`+last+`"}`,
			"User-Agent", ua); code != 201 {
			t.Fatalf("register %s: %d %v", email, code, m)
		}
		code, m := postJSON(t, base+"/api/v1/login", `{"email":"`+email+`","password":"`+pw+`"}`, "User-Agent", ua)
		token, _ := m["session_token"].(string)
		if code != 200 || token == "" {
			t.Fatalf("login %s: %d %v", email, code, m)
		}
		return token
	}
	erin := register(secrets[0], secrets[1], secrets[2], secrets[3])
	keeper := register("keeper@example.com", "Keeper", "Stays", "KeeperAgent/1.0")
	// Something personal in the read models before the erasure: the scan below must see it.
	code, _, h := doJSON(t, http.MethodPatch, base+"/api/v1/me", `{"first_name":"`+secrets[1]+`"}`,
		"Authorization", "Bearer "+erin, "User-Agent", secrets[3])
	if code != 200 {
		t.Fatalf("patch me: %d", code)
	}
	if code, _, _ := doJSON(t, http.MethodGet, base+"/api/v1/me/activity?min_position="+h.Get("Vigil-Position"), "",
		"Authorization", "Bearer "+erin); code != 200 {
		t.Fatalf("activity: %d", code)
	}
	if hits := scanDir(t, dir, secrets); len(hits[filepath.Join(dir, EventsFile)]) != 0 {
		t.Fatalf("the log holds personal values in clear: %v", hits)
	} else if len(hits) == 0 {
		t.Fatal("before the erasure no file holds the personal values: the scan sees nothing, so it proves nothing")
	}

	code, _, h = doJSON(t, http.MethodDelete, base+"/api/v1/me", "", "Authorization", "Bearer "+erin, "User-Agent", secrets[3])
	if code != http.StatusNoContent {
		t.Fatalf("DELETE /me: %d", code)
	}
	if code := whoamiStatus(t, base, erin); code != 401 {
		t.Errorf("whoami of the erased account's session: %d", code)
	}
	// The read models have applied the erasure once the other account's read waits for it.
	if code, _, _ := doJSON(t, http.MethodGet, base+"/api/v1/me/activity?min_position="+h.Get("Vigil-Position"), "",
		"Authorization", "Bearer "+keeper); code != 200 {
		t.Fatalf("keeper's activity: %d", code)
	}
	if code := whoamiStatus(t, base, keeper); code != 200 {
		t.Errorf("the other account's session: %d", code)
	}
	// The mail outbox follows the log on its own: it removes the account's .eml files (the
	// verification mail of the registration) when it reaches the erasure.
	testwait.Until(t, 10*time.Second, "the outbox to forget the erased account's mail files", func() (bool, string) {
		hits := scanDir(t, filepath.Join(dir, MailDir), secrets)
		return len(hits) == 0, fmt.Sprint(hits)
	})
	stop()
	if hits := scanDir(t, dir, secrets); len(hits) != 0 {
		t.Errorf("after the erasure and a clean stop, files still hold personal values: %v", hits)
	}

	base, stop = startApp(t, dir, clk)
	defer stop()
	if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"`+secrets[0]+`","password":"`+pw+`","first_name":"New","last_name":"Person"}`); code != 201 {
		t.Errorf("registering the erased email again: %d %v", code, m)
	}
}

// scanDir returns, per file under dir, which of needles its bytes hold.
func scanDir(t *testing.T, dir string, needles []string) map[string][]string {
	t.Helper()
	hits := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) || bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(n))) {
				hits[path] = append(hits[path], n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}
