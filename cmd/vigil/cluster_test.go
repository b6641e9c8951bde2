package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

const clusterPassword = "umbrella-cactus-violin-47"

// cluster is three `vigil serve` processes sharing one SQLite log file and one NATS server,
// behind a round-robin reverse proxy.
type cluster struct {
	t        *testing.T
	bin      string
	shared   string // the shared log's directory: events.db, events.keys.db, the key files
	logPath  string
	keyFile  string
	sigFile  string
	natsDir  string
	natsPort int
	ns       *natsserver.Server
	env      []string // added to each instance's environment
	extra    []string // flags added to each instance's
	nodes    []*clusterNode
	proxy    *rrProxy
	front    *httptest.Server
}

// clusterNode is one instance: its process and its own URL (for looking behind the proxy).
type clusterNode struct {
	cmd  *exec.Cmd
	url  string
	dead atomic.Bool
}

// startClusterNATS runs the in-process nats-server with JetStream on port (-1: any free one).
func startClusterNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(testwait.Deadline(10 * time.Second)) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func newCluster(t *testing.T, n int) *cluster { return newClusterWith(t, n, nil) }

// newClusterWith starts n instances with env added to their environment and extra flags.
func newClusterWith(t *testing.T, n int, env []string, extra ...string) *cluster {
	bin, err := buildVigil()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, shared: t.TempDir(), natsDir: t.TempDir(), env: env, extra: extra}
	c.logPath = filepath.Join(c.shared, app.EventsFile)
	c.keyFile = filepath.Join(c.shared, "secret.key")
	c.sigFile = filepath.Join(c.shared, "log-signing.key")
	if _, _, err := app.EnsureSecretKey(c.keyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := chain.EnsureKeyRing(c.sigFile, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.ns = startClusterNATS(t, c.natsDir, -1)
	c.natsPort = c.ns.Addr().(*net.TCPAddr).Port
	for i := range n {
		c.nodes = append(c.nodes, c.start(i, c.keyFile, c.sigFile))
	}
	c.proxy = newRRProxy(c.nodes)
	c.front = httptest.NewServer(c.proxy)
	t.Cleanup(c.front.Close)
	for _, nd := range c.nodes {
		waitReady(t, nd.url)
	}
	return c
}

// args are serve's flags for instance i (its own data directory, the shared log, keys and NATS).
func (c *cluster) args(i int, keyFile, sigFile string) []string {
	return []string{"serve", "--data-dir", filepath.Join(c.shared, fmt.Sprintf("instance-%d", i)),
		"--store", "sqlite://" + c.logPath, "--nats-url", c.ns.ClientURL(),
		"--secret-key-file", keyFile, "--log-signing-key-file", sigFile,
		"--addr", "127.0.0.1:0", "--trusted-proxies", "127.0.0.0/8",
		"--argon2-memory-kib", "8192", "--argon2-iterations", "1"}
}

func (c *cluster) start(i int, keyFile, sigFile string) *clusterNode {
	c.t.Helper()
	env := append([]string{"VIGIL_CHECKPOINT_INTERVAL=100ms"}, c.env...)
	srv := startVigil(c.t, c.bin, env, 20*time.Second, append(c.args(i, keyFile, sigFile), c.extra...)...)
	return &clusterNode{cmd: srv.Cmd, url: srv.url}
}

// rrProxy sends each request to the next live instance in turn, and names the instance in the
// answer's X-Cluster-Node header. A killed instance is taken out of the rotation by the test,
// as a load balancer's health check would.
type rrProxy struct {
	nodes []*clusterNode
	rps   []*httputil.ReverseProxy
	next  atomic.Uint64
}

func newRRProxy(nodes []*clusterNode) *rrProxy {
	p := &rrProxy{nodes: nodes}
	for i, nd := range nodes {
		target, _ := url.Parse(nd.url)
		p.rps = append(p.rps, &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded() // appends the proxy's peer to the client's X-Forwarded-For
			},
			ModifyResponse: func(r *http.Response) error {
				r.Header.Set("X-Cluster-Node", strconv.Itoa(i))
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				w.Header().Set("X-Cluster-Node", strconv.Itoa(i))
				http.Error(w, err.Error(), http.StatusBadGateway)
			},
		})
	}
	return p
}

func (p *rrProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for range 2 * len(p.nodes) {
		i := int(p.next.Add(1)-1) % len(p.nodes)
		if !p.nodes[i].dead.Load() {
			p.rps[i].ServeHTTP(w, r)
			return
		}
	}
	http.Error(w, "no instance alive", http.StatusBadGateway)
}

// answer is one HTTP answer of the cluster.
type answer struct {
	code   int
	body   map[string]any
	raw    string
	node   string
	header http.Header
}

// call sends a JSON request to base (the proxy or one instance) as client ip (X-Forwarded-For)
// with a bearer token ("" for none).
func call(t *testing.T, base, method, path string, body any, token, ip string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{code: res.StatusCode, raw: string(raw), node: res.Header.Get("X-Cluster-Node"), header: res.Header}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (a answer) want(t *testing.T, code int, what string) answer {
	t.Helper()
	if a.code != code {
		t.Fatalf("%s: %d %s, want %d", what, a.code, a.raw, code)
	}
	return a
}

func (c *cluster) do(method, path string, body any, token, ip string) answer {
	c.t.Helper()
	return call(c.t, c.front.URL, method, path, body, token, ip)
}

func (c *cluster) register(email string) string {
	c.t.Helper()
	a := c.do("POST", "/api/v1/accounts", map[string]string{"email": email, "password": clusterPassword,
		"first_name": "Test", "last_name": "User"}, "", "203.0.113.1").want(c.t, 201, "register "+email)
	return a.body["account_id"].(string)
}

// known waits until every live instance answers whoami for token: a session started on one
// instance reaches the others' memory through the log feed.
func (c *cluster) known(token string) {
	c.t.Helper()
	for i, nd := range c.nodes {
		if nd.dead.Load() {
			continue
		}
		testwait.Until(c.t, 5*time.Second, fmt.Sprintf("instance %d to know the session", i), func() (bool, string) {
			a := call(c.t, nd.url, "GET", "/api/v1/whoami", nil, token, "")
			return a.code == 200, a.raw
		})
	}
}

func (c *cluster) login(email, ip string) answer {
	c.t.Helper()
	return c.do("POST", "/api/v1/login", map[string]string{"email": email, "password": clusterPassword}, "", ip)
}

func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

var clusterRP = virtualwebauthn.RelyingParty{Name: "Vigil", ID: "localhost", Origin: "http://localhost:8080"}

// clusterDevice is a virtual authenticator with one EC2 credential whose user handle is the
// account id (coordinates with a leading zero byte are drawn again: COSE parsers refuse them).
func clusterDevice(accountID string) (virtualwebauthn.Authenticator, virtualwebauthn.Credential) {
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		if len(cred.Key.AttestationData()) == 77 {
			return virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(accountID)}), cred
		}
	}
}

func publicKeyJSON(t *testing.T, a answer) string {
	t.Helper()
	b, err := json.Marshal(a.body["public_key"])
	if err != nil || a.body["ceremony_id"] == nil {
		t.Fatalf("options answered %s", a.raw)
	}
	return string(b)
}

// TestClusterBehindRoundRobinProxy runs three real `vigil serve` processes on one shared log
// file (sqlite://PATH) and one in-process NATS server (--nats-url), behind a round-robin
// reverse proxy without sticky sessions: each step of a sign-in may land on another instance.
func TestClusterBehindRoundRobinProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers")
	}
	c := newCluster(t, 3)

	// Password on one instance, the authenticator app's code on another.
	ann := "ann@example.com"
	c.register(ann)
	first := c.login(ann, "203.0.113.10").want(t, 200, "ann's first sign-in")
	tok := first.body["session_token"].(string)
	c.known(tok)
	dev := c.do("POST", "/api/v1/me/totp", map[string]string{"name": "phone"}, tok, "").want(t, 201, "add TOTP")
	secret := dev.body["secret"].(string)
	c.do("POST", "/api/v1/me/totp/"+dev.body["device_id"].(string)+"/confirm", map[string]string{"code": totpAt(t, secret, time.Now())},
		tok, "").want(t, 200, "confirm TOTP")
	pw := c.login(ann, "203.0.113.10").want(t, 200, "password with 2FA on")
	if pw.body["status"] != "second_factor_required" {
		t.Fatalf("password step: %s", pw.raw)
	}
	// The confirmation spent this time step's code: the next step's (one step of skew).
	sf := c.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": pw.body["login_ticket"].(string),
		"method": "totp", "code": totpAt(t, secret, time.Now().Add(30*time.Second))}, "", "203.0.113.10").want(t, 200, "TOTP on another instance")
	if sf.body["status"] != "authenticated" || sf.node == pw.node {
		t.Fatalf("second factor: %s on instance %s after the password on %s", sf.raw, sf.node, pw.node)
	}
	annTok := sf.body["session_token"].(string)
	t.Logf("password on instance %s, TOTP on instance %s", pw.node, sf.node)

	// Passkey options on one instance, the assertion on another.
	bob := "bob@example.com"
	bobID := c.register(bob)
	bl := c.login(bob, "203.0.113.11").want(t, 200, "bob's sign-in")
	bt := bl.body["session_token"].(string)
	// At once on another instance: an unknown token waits for the log feed to reach the
	// log's head before it is refused, so a session started a moment ago elsewhere is found.
	signedOn, _ := strconv.Atoi(bl.node)
	for _, k := range []int{1, 2} {
		call(t, c.nodes[(signedOn+k)%3].url, "GET", "/api/v1/whoami", nil, bt, "").want(t, 200, "whoami at once on another instance")
	}
	c.known(bt)
	auth, cred := clusterDevice(bobID)
	ro := c.do("POST", "/api/v1/me/passkeys/options", map[string]string{"name": "laptop"}, bt, "").want(t, 200, "registration options")
	attOpts, err := virtualwebauthn.ParseAttestationOptions(publicKeyJSON(t, ro))
	if err != nil {
		t.Fatal(err)
	}
	reg := c.do("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": ro.body["ceremony_id"],
		"credential":              json.RawMessage(virtualwebauthn.CreateAttestationResponse(clusterRP, auth, cred, *attOpts)),
		"sign_out_other_sessions": false}, bt, "").want(t, 201, "passkey registration on another instance")
	if reg.node == ro.node {
		t.Fatalf("registration options and answer on one instance %s", ro.node)
	}
	lo := c.do("POST", "/api/v1/login/passkey/options", nil, "", "203.0.113.11").want(t, 200, "passkey sign-in options")
	asOpts, err := virtualwebauthn.ParseAssertionOptions(publicKeyJSON(t, lo))
	if err != nil {
		t.Fatal(err)
	}
	cred.Counter = 1
	pk := c.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": lo.body["ceremony_id"],
		"credential": json.RawMessage(virtualwebauthn.CreateAssertionResponse(clusterRP, auth, cred, *asOpts))}, "", "203.0.113.11").
		want(t, 200, "passkey assertion on another instance")
	if pk.body["status"] != "authenticated" || pk.node == lo.node {
		t.Fatalf("passkey sign-in: %s on instance %s after the options on %s", pk.raw, pk.node, lo.node)
	}
	t.Logf("passkey options on instance %s, assertion on instance %s", lo.node, pk.node)

	// Wrong passwords spread over the three instances hit one shared limit: the free five and
	// the one that starts the wait are checked (401), every other one is refused (429).
	carol := "carol@example.com"
	c.register(carol)
	const burst = 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	checkedOn := map[string]int{}
	fire := make(chan struct{})
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-fire // all at once: the first wait (1 s) must not end before the last attempt arrives
			a := c.do("POST", "/api/v1/login", map[string]string{"email": carol, "password": "wrong-wrong-wrong-1"}, "", "198.51.100.7")
			mu.Lock()
			defer mu.Unlock()
			codes[a.code]++
			if a.code == 401 {
				checkedOn[a.node]++
			}
			if a.code == 429 && (a.body["code"] != "too_many_attempts" || a.header.Get("Retry-After") == "") {
				t.Errorf("throttled answer: %s", a.raw)
			}
		}()
	}
	close(fire)
	wg.Wait()
	if codes[401] != 6 || codes[429] != burst-6 || len(checkedOn) < 2 {
		t.Fatalf("%d wrong passwords over three instances: %v (401 by instance %v); want exactly 6 checked (401), %d refused (429)",
			burst, codes, checkedOn, burst-6)
	}
	t.Logf("throttling across instances: %v, checks by instance %v", codes, checkedOn)

	// A sign-out on one instance fails whoami on the others within one second.
	c.known(annTok)
	out := c.do("POST", "/api/v1/logout", nil, annTok, "").want(t, 204, "logout")
	for i, nd := range c.nodes {
		testwait.Until(t, time.Second, fmt.Sprintf("instance %d to refuse the signed-out session (signed out on %s)", i, out.node), func() (bool, string) {
			a := call(t, nd.url, "GET", "/api/v1/whoami", nil, annTok, "")
			return a.code == 401, a.raw
		})
	}

	// NATS away: sign-ins answer 503 (fail closed), whoami keeps answering from memory; when
	// NATS is back on its address everything works again by itself.
	bobTok := pk.body["session_token"].(string)
	c.known(bobTok)
	c.ns.Shutdown()
	c.ns.WaitForShutdown()
	for i, nd := range c.nodes {
		testwait.Until(t, 10*time.Second, fmt.Sprintf("instance %d to refuse sign-ins while NATS is away", i), func() (bool, string) {
			a := call(t, nd.url, "POST", "/api/v1/login", map[string]string{"email": carol, "password": clusterPassword}, "", "198.51.100.8")
			return a.code == 503 && a.body["code"] == "unavailable" && a.header.Get("Retry-After") != "", a.raw
		})
		call(t, nd.url, "GET", "/api/v1/whoami", nil, bobTok, "").want(t, 200, fmt.Sprintf("whoami on instance %d while NATS is away", i))
		call(t, nd.url, "POST", "/api/v1/login/passkey/options", nil, "", "198.51.100.8").want(t, 503, "passkey options while NATS is away")
	}
	c.ns = startClusterNATS(t, c.natsDir, c.natsPort)
	for i, nd := range c.nodes {
		testwait.Until(t, 15*time.Second, fmt.Sprintf("instance %d to sign in again once NATS is back", i), func() (bool, string) {
			a := call(t, nd.url, "POST", "/api/v1/login", map[string]string{"email": bob, "password": clusterPassword}, "", "198.51.100.9")
			return a.code == 200 && a.body["status"] == "second_factor_required", a.raw
		})
	}
	// The shared count survived the outage: carol is still waiting or counted (never reset).

	// kill -9 of one instance mid-load: no acknowledged event is lost and the other two keep
	// serving.
	type acked struct {
		id  string
		pos uint64
	}
	var (
		ackMu   sync.Mutex
		acks    []acked
		stop    atomic.Bool
		n       atomic.Int64
		failed  atomic.Int64
		workers sync.WaitGroup
	)
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; !stop.Load(); i++ {
				email := fmt.Sprintf("load-%d-%d@example.com", w, i)
				a := call(t, c.front.URL, "POST", "/api/v1/accounts", map[string]string{"email": email, "password": clusterPassword,
					"first_name": "Load", "last_name": "Test"}, "", fmt.Sprintf("192.0.2.%d", w+1))
				if a.code != 201 {
					failed.Add(1)
					continue
				}
				pos, _ := strconv.ParseUint(a.header.Get("Vigil-Position"), 10, 64)
				ackMu.Lock()
				acks = append(acks, acked{a.body["account_id"].(string), pos})
				ackMu.Unlock()
				n.Add(1)
			}
		}()
	}
	waitAcks := func(want int64, what string) {
		testwait.Until(t, 60*time.Second, what, func() (bool, string) { return n.Load() >= want, fmt.Sprintf("%d acknowledged", n.Load()) })
	}
	waitAcks(30, "30 registrations before the kill")
	victim := c.nodes[2]
	// Out of the rotation as a balancer's health check would take it (no new requests), then
	// killed with the requests it holds in flight.
	victim.dead.Store(true)
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	_ = victim.cmd.Wait()
	before := n.Load()
	failedAtKill := failed.Load()
	waitAcks(before+30, "30 registrations after the kill on the two others")
	stop.Store(true)
	workers.Wait()
	if f := failed.Load() - failedAtKill; f > 4 {
		t.Fatalf("%d registrations failed after the kill; only those in flight to the killed instance may", f)
	}
	for i, nd := range c.nodes[:2] {
		a := call(t, nd.url, "POST", "/api/v1/login", map[string]string{"email": carol + "x", "password": clusterPassword}, "", "198.51.100.20")
		if a.code != 401 {
			t.Fatalf("instance %d after the kill: %d %s", i, a.code, a.raw)
		}
	}

	// Stop the survivors cleanly, then check the shared log: every acknowledged registration
	// is there at its position, and the hash chain written by three processes (checkpoints
	// signed by each) verifies.
	for _, nd := range c.nodes[:2] {
		_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		if err := nd.cmd.Wait(); err != nil {
			t.Fatalf("vigil serve after SIGTERM: %v", err)
		}
	}
	store, err := sqlite.Open(sqlite.Config{Path: c.logPath, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	byPos := map[uint64]string{}
	for _, e := range testkit.ReadLog(t, store) {
		byPos[e.Position] = e.StreamID
	}
	store.Close()
	for _, a := range acks {
		if byPos[a.pos] == "" {
			t.Fatalf("acknowledged registration %s at position %d is not in the log", a.id, a.pos)
		}
		found := false
		for _, s := range byPos {
			if s == domain.AccountStream(a.id) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("acknowledged account %s has no stream in the log", a.id)
		}
	}
	out2, err := exec.Command(c.bin, "verify", "--data-dir", c.shared, "--log-signing-key-file", c.sigFile).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out2), "verified ") {
		t.Fatalf("vigil verify of the shared log: %v\n%s", err, out2)
	}
	t.Logf("%d acknowledged registrations (%d after the kill) all in the log; %s", len(acks), len(acks)-int(before), strings.TrimSpace(string(out2)))

	// Another server key or log signing key on the shared log stops the start with one line.
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, _, err := app.EnsureSecretKey(otherKey); err != nil {
		t.Fatal(err)
	}
	otherSig := filepath.Join(t.TempDir(), "other-signing.key")
	if _, _, err := chain.EnsureKeyRing(otherSig, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, sig, want string
	}{
		{otherKey, c.sigFile, "vigil: --secret-key-file: the server key does not open the data keys"},
		{c.keyFile, otherSig, "vigil: --log-signing-key-file does not verify the log's checkpoint at position"},
	} {
		cmd := exec.Command(c.bin, c.args(7, tc.key, tc.sig)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		if err == nil || !strings.Contains(last, tc.want) {
			t.Fatalf("start with a foreign key: %v, stderr %q; want a last line with %q", err, stderr.String(), tc.want)
		}
	}
}
