package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// Message is one mail the outbox sends: what an event triggered, rendered.
type Message struct {
	// EventID is the triggering event's id; Kind says which mail it is ("password_changed").
	// Both name the .eml file and make the Message-ID, so that a message sent again after a
	// crash carries the same Message-ID (receivers may drop it as a duplicate).
	EventID, Kind string
	// AccountID is the account the message is about: an .eml file is named by it too, so
	// that an erasure can remove the account's files (FileSender.Forget).
	AccountID  string
	To         netmail.Address
	Subject    string
	Text, HTML string
	Date       time.Time
}

// Sender delivers messages. Send returns nil once the message is accepted (by the SMTP
// server, or written to disk); an error wrapping ErrRejected when the server refused this
// message for good (the outbox counts it and moves on); any other error is retried.
type Sender interface {
	Send(ctx context.Context, m *Message) error
	Close() error
}

// ErrRejected: the SMTP server refused the message permanently (a 5xx answer to its
// recipient), so sending it again cannot succeed.
var ErrRejected = errors.New("mail: message rejected by the SMTP server")

// SMTPConfig says where and how mail is submitted (ParseSMTPURL reads --smtp-url).
type SMTPConfig struct {
	Host string
	Port int
	// Username and Password authenticate (the strongest mechanism both sides support; PLAIN
	// and LOGIN only over TLS) when Username is set.
	Username, Password string
	// SSL is TLS from the start (smtps://); otherwise STARTTLS is used when the server offers
	// it, and RequireTLS (?tls=required) refuses a server that does not.
	SSL, RequireTLS bool
	// TLSConfig overrides the TLS settings (tests pass their own roots); nil verifies the
	// server's certificate for Host with the system roots.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each command; default 15s.
	Timeout time.Duration
	// HELO is the name given in EHLO; default the machine's host name.
	HELO string
}

// ParseSMTPURL reads --smtp-url: smtp://[user:pass@]host[:port][?tls=required] (port 587
// by default; STARTTLS when offered, insisted on with tls=required) or
// smtps://[user:pass@]host[:port] (TLS from the start, port 465 by default). The error never
// repeats the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, fmt.Errorf("%q is not a URL", RedactURL(raw))
	}
	var c SMTPConfig
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		c.Port = 587
	case "smtps":
		c.SSL, c.Port = true, 465
	default:
		return SMTPConfig{}, fmt.Errorf("%q: the scheme must be smtp or smtps", RedactURL(raw))
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return SMTPConfig{}, fmt.Errorf("%q names no host", RedactURL(raw))
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return SMTPConfig{}, fmt.Errorf("%q: no path or fragment is allowed", RedactURL(raw))
	}
	c.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", RedactURL(raw), p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	for k, vs := range u.Query() {
		switch {
		case k == "tls" && len(vs) == 1 && vs[0] == "required":
			c.RequireTLS = true
		case k == "tls" && len(vs) == 1 && vs[0] == "opportunistic":
		default:
			return SMTPConfig{}, fmt.Errorf("%q: unknown option %q (only tls=required)", RedactURL(raw), k)
		}
	}
	if c.SSL && c.RequireTLS {
		c.RequireTLS = false // smtps is TLS from the start
	}
	return c, nil
}

// RedactURL returns raw with its password replaced by "***", for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndexByte(raw, '@'); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "***" + raw[i:]
			}
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
}

// SMTPSender submits mail with github.com/wneessen/go-mail, keeping one connection open
// while messages follow each other (it is closed after IdleTimeout unused, and opened again
// when the server dropped it). Safe for concurrent use (sends are serialised).
type SMTPSender struct {
	cfg    SMTPConfig
	from   *netmail.Address
	client *gomail.Client

	mu   sync.Mutex
	conn *smtp.Client // the open connection, nil when none
	last time.Time
	idle *time.Timer // closes the connection IdleTimeout after the last message
}

// IdleTimeout is how long SMTPSender keeps an unused connection before opening a new one.
const IdleTimeout = 5 * time.Second

// NewSMTPSender checks cfg; it does not connect (the first Send does).
func NewSMTPSender(cfg SMTPConfig, from *netmail.Address) (*SMTPSender, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	// No NOOP before and no RSET after each message: two round trips of six. A connection the
	// server dropped fails at MAIL FROM, before anything is accepted, and Send opens a new one.
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout), gomail.WithoutNoop(), gomail.WithoutRset()}
	switch {
	case cfg.SSL:
		opts = append(opts, gomail.WithSSL())
	case cfg.RequireTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if cfg.TLSConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(cfg.TLSConfig))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	c, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp client: %w", err)
	}
	return &SMTPSender{cfg: cfg, from: from, client: c}, nil
}

// Send implements Sender.
func (s *SMTPSender) Send(ctx context.Context, m *Message) error {
	msg, err := buildMsg(s.from, m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		fresh := false
		if s.conn == nil || time.Since(s.last) > IdleTimeout {
			s.closeLocked()
			c, err := s.client.DialToSMTPClientWithContext(ctx)
			if err != nil {
				return fmt.Errorf("mail: connect to %s: %w", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), err)
			}
			s.conn, fresh = c, true
		}
		err := s.client.SendWithSMTPClient(s.conn, msg)
		if err == nil {
			s.last = time.Now()
			if s.idle == nil {
				s.idle = time.AfterFunc(IdleTimeout, s.closeIdle)
			} else {
				s.idle.Reset(IdleTimeout)
			}
			return nil
		}
		s.closeLocked()
		var se *gomail.SendError
		if errors.As(err, &se) {
			if se.Reason == gomail.ErrSMTPRcptTo && !se.IsTemp() {
				return fmt.Errorf("%w: %s", ErrRejected, redactAddresses(err.Error()))
			}
			if (se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPMailFrom) && !fresh && attempt == 0 {
				continue // the server closed the kept connection: open a new one once
			}
		}
		// go-mail's errors name the recipients, and servers' answers often repeat them: the
		// error (which is logged) keeps neither.
		return fmt.Errorf("mail: send: %s", redactAddresses(err.Error()))
	}
}

var addressRE = regexp.MustCompile(`[^\s<>"',;:()\[\]]+@[^\s<>"',;:()\[\]]+`)

// redactAddresses replaces every email address in s with "[address]".
func redactAddresses(s string) string { return addressRE.ReplaceAllString(s, "[address]") }

// Close implements Sender: it ends the open connection, if any.
func (s *SMTPSender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle != nil {
		s.idle.Stop()
	}
	s.closeLocked()
	return nil
}

// closeIdle ends a connection unused for IdleTimeout (the server would drop it anyway).
func (s *SMTPSender) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && time.Since(s.last) >= IdleTimeout {
		s.closeLocked()
	}
}

func (s *SMTPSender) closeLocked() {
	if s.conn != nil {
		_ = s.client.CloseWithSMTPClient(s.conn)
		s.conn = nil
	}
}

// buildMsg makes the go-mail message of m: multipart/alternative text and HTML, a stable
// Message-ID, Auto-Submitted (RFC 3834: no auto-replies) and X-Vigil-Event.
func buildMsg(from *netmail.Address, m *Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	to := m.To
	msg.AddToMailAddress(&to)
	msg.Subject(m.Subject)
	msg.SetDateWithValue(m.Date)
	host := "vigil.invalid"
	if _, h, ok := strings.Cut(from.Address, "@"); ok && h != "" {
		host = h
	}
	msg.SetMessageIDWithValue(m.EventID + "." + m.Kind + "@" + host)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(HeaderEvent, m.EventID)
	msg.SetGenHeader(HeaderKind, m.Kind)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	if _, err := msg.GetRecipients(); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return msg, nil
}

// Headers every message carries beside the standard ones.
const (
	// HeaderEvent is the id of the event the message is about.
	HeaderEvent = "X-Vigil-Event"
	// HeaderKind is the kind of message ("password_changed").
	HeaderKind = "X-Vigil-Mail"
)

// FileSender writes each message as an .eml file in Dir (without --smtp-url), named by the
// triggering event and the kind, so a message written again after a crash replaces its
// file. Files are written to a temporary name and renamed (a reader never sees half a
// file), mode 0600: they hold links that act on the account.
type FileSender struct {
	Dir  string
	From *netmail.Address
	// Written is called with each file's path (the outbox logs it).
	Written func(path string)
}

// Send implements Sender.
func (f *FileSender) Send(_ context.Context, m *Message) error {
	msg, err := buildMsg(f.From, m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	name := m.Date.UTC().Format("20060102T150405Z") + "-" + m.EventID + "-" + m.Kind + ".eml"
	if m.AccountID != "" {
		name = m.Date.UTC().Format("20060102T150405Z") + "-" + m.AccountID + "-" + m.EventID + "-" + m.Kind + ".eml"
	}
	path := filepath.Join(f.Dir, name)
	tmp, err := os.CreateTemp(f.Dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("mail: write %s: %w", path, err)
	}
	if f.Written != nil {
		f.Written(path)
	}
	return nil
}

// Close implements Sender.
func (f *FileSender) Close() error { return nil }

// Forget implements Forgetter: it removes every .eml file about accountID (an erased
// account's mail must not outlive its data key in the data directory).
func (f *FileSender) Forget(_ context.Context, accountID string) error {
	if accountID == "" || strings.ContainsAny(accountID, `/\*?[`) {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(f.Dir, "*-"+accountID+"-*.eml"))
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	for _, path := range files {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mail: forget %s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// Forgetter is a Sender that keeps copies of what it sent (FileSender): the outbox asks it to
// forget an account's messages when the account is erased.
type Forgetter interface {
	Forget(ctx context.Context, accountID string) error
}

// ParseFrom reads --mail-from (an address, optionally with a display name: `Vigil
// <no-reply@example.com>`); empty gives "Vigil <no-reply@HOST>" with the host of publicURL.
func ParseFrom(mailFrom, publicURL string) (*netmail.Address, error) {
	if strings.TrimSpace(mailFrom) == "" {
		u, err := url.Parse(publicURL)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("no host in the public URL %q for the default sender", publicURL)
		}
		return &netmail.Address{Name: "Vigil", Address: "no-reply@" + u.Hostname()}, nil
	}
	a, err := netmail.ParseAddress(mailFrom)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address (e.g. \"Vigil <no-reply@example.com>\")", mailFrom)
	}
	return a, nil
}
