package app

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestLogIntegrityRoutes: GET /api/v1/log/keys answers anyone with the Ed25519 key; GET
// /api/v1/log/checkpoints answers an admin with checkpoints whose signatures verify with that
// key over API.md's exact bytes, and refuses an ordinary account.
func TestLogIntegrityRoutes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := New(context.Background(), Config{
		Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir,
		Argon2MemoryKiB: 8192, Argon2Iterations: 1, AdminEmails: []string{"boss@example.com"},
		CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := a.URL()
	waitServing(t, base)

	var keys struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			Algorithm string `json:"algorithm"`
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	getJSON(t, base+"/api/v1/log/keys", "", &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].Algorithm != "Ed25519" {
		t.Fatalf("keys: %+v", keys)
	}
	pub, err := base64.StdEncoding.DecodeString(keys.Keys[0].PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("public key %q: %v", keys.Keys[0].PublicKey, err)
	}

	token := func(email string) string {
		const pw = "umbrella-cactus-violin-47"
		postJSON(t, base+"/api/v1/accounts", `{"email":"`+email+`","password":"`+pw+`","first_name":"A","last_name":"B"}`)
		_, m := postJSON(t, base+"/api/v1/login", `{"email":"`+email+`","password":"`+pw+`"}`)
		s, _ := m["session_token"].(string)
		return s
	}
	boss, ann := token("boss@example.com"), token("ann@example.com")
	// Team routes want a session that proved a second factor: enrolling one upgrades it.
	code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp", `{"name":"phone"}`, "Authorization", "Bearer "+boss)
	id, secret := m["device_id"].(string), m["secret"].(string)
	otpCode, err := totp.GenerateCode(secret, time.Now())
	if code != 201 || err != nil {
		t.Fatalf("add TOTP: %d %v %v", code, m, err)
	}
	if code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp/"+id+"/confirm", `{"code":"`+otpCode+`"}`, "Authorization", "Bearer "+boss); code != 200 {
		t.Fatalf("confirm TOTP: %d %v", code, m)
	}
	if code := bearerStatus(t, base+"/api/v1/log/checkpoints", ann); code != http.StatusForbidden {
		t.Errorf("an ordinary account's checkpoints: %d, want 403", code)
	}
	var page struct {
		Items []struct {
			Position  uint64 `json:"position"`
			Hash      string `json:"hash"`
			Time      string `json:"time"`
			KeyID     string `json:"key_id"`
			Signature string `json:"signature"`
		} `json:"items"`
	}
	testwait.Until(t, 5*time.Second, "a checkpoint", func() (bool, string) {
		getJSON(t, base+"/api/v1/log/checkpoints?after=0", boss, &page)
		return len(page.Items) > 0, fmt.Sprintf("%+v", page)
	})
	for _, cp := range page.Items {
		sig, _ := base64.StdEncoding.DecodeString(cp.Signature)
		msg := fmt.Sprintf("vigil.checkpoint.v1\n%d\n%s\n%s", cp.Position, cp.Hash, cp.Time)
		if cp.KeyID != keys.Keys[0].KeyID || !ed25519.Verify(pub, []byte(msg), sig) {
			t.Errorf("checkpoint %+v does not verify with key %s", cp, keys.Keys[0].KeyID)
		}
	}
	if code := bearerStatus(t, base+"/api/v1/log/checkpoints?after=x", boss); code != http.StatusBadRequest {
		t.Errorf("after=x: %d, want 400", code)
	}
	// A position past any the log can hold (above SQLite's largest integer) has nothing after it.
	getJSON(t, base+"/api/v1/log/checkpoints?after=18446744073709551615", boss, &page)
	if len(page.Items) != 0 {
		t.Errorf("after the largest position: %+v", page)
	}
}

// getJSON GETs url (with the bearer token unless empty), wants 200 and decodes into v.
func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}
