// Package mailtest runs a real SMTP server in the test process (github.com/emersion/go-smtp)
// that keeps what it receives, for the mail outbox's tests and the end-to-end tests of the
// server binary. It is test-only: the server binary does not link it.
package mailtest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Raw  []byte
	// Header is the parsed header; Text and HTML the decoded bodies of the multipart message.
	Header     netmail.Header
	Text, HTML string
}

// Config configures Start; the zero value accepts everything without TLS or AUTH.
type Config struct {
	// TLS, when set, offers STARTTLS (or, with Implicit, speaks TLS from the start).
	TLS      *tls.Config
	Implicit bool
	// Username and Password, when set, require AUTH PLAIN with them before MAIL.
	Username, Password string
	// Delay is waited before each message is accepted (a slow server).
	Delay time.Duration
	// ReplyDelay is waited after a message is recorded, before the 250 reply: what a client
	// counts on that reply lags what Messages shows, as with a real server that stores first.
	ReplyDelay time.Duration
	// Reject, when it returns true for a recipient, refuses it with 550.
	Reject func(rcpt string) bool
}

// Server is a running SMTP server.
type Server struct {
	t    testing.TB
	cfg  Config
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	msgs     []Message
	changed  chan struct{}
	sessions int
}

// Start runs a server on 127.0.0.1 (a free port); it stops when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{t: t, cfg: cfg, changed: make(chan struct{})}
	if err := s.listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// URL is the --smtp-url of the server (smtp://, or smtps:// when Implicit).
func (s *Server) URL() string {
	scheme := "smtp"
	if s.cfg.Implicit {
		scheme = "smtps"
	}
	user := ""
	if s.cfg.Username != "" {
		user = s.cfg.Username + ":" + s.cfg.Password + "@"
	}
	return scheme + "://" + user + s.addr
}

func (s *Server) listen(addr string) error {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &session{s: s}, nil
	}))
	srv.Domain = "mailtest.localhost"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	var ln net.Listener
	var err error
	if s.cfg.TLS != nil && s.cfg.Implicit {
		ln, err = tls.Listen("tcp", addr, s.cfg.TLS)
	} else {
		srv.TLSConfig = s.cfg.TLS
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.srv, s.ln, s.addr = srv, ln, ln.Addr().String()
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop closes the server: connections are refused until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = s.listen(s.addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
}

// Messages returns what the server has accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Sessions is how many SMTP sessions were opened.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Changed is closed at the next accepted message.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.cfg.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.s.cfg.Username || password != ss.s.cfg.Password {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.cfg.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if r := ss.s.cfg.Reject; r != nil && r(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if d := ss.s.cfg.Delay; d > 0 {
		time.Sleep(d)
	}
	m := Message{From: ss.from, To: ss.to, Raw: raw}
	parse(&m)
	ss.s.add(m)
	if d := ss.s.cfg.ReplyDelay; d > 0 {
		time.Sleep(d)
	}
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// parse fills the header and the bodies (best effort: a test asserts on what it finds).
func parse(m *Message) {
	msg, err := netmail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return
	}
	m.Header = msg.Header
	walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, m)
}

func walk(contentType, encoding string, body io.Reader, m *Message) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m)
		}
	}
	text, _ := io.ReadAll(decode(encoding, body))
	switch mt {
	case "text/plain":
		m.Text = string(text)
	case "text/html":
		m.HTML = string(text)
	}
}

// Parse reads a raw message (an .eml file) as the server would have kept it.
func Parse(raw []byte) Message {
	m := Message{Raw: raw}
	parse(&m)
	return m
}
