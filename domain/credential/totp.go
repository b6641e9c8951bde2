package credential

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 as authenticator apps implement it): HMAC-SHA-1, 6 digits, a
// 30-second time step, and one step of clock skew accepted either way.
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = 6
	TOTPSkew   = 1
	// TOTPSecretSize is the size in bytes of a new TOTP secret: RFC 4226's recommended 160 bits.
	TOTPSecretSize = 20
	// QRCodeSize is the width and height in pixels of the QR PNG of a TOTP device.
	QRCodeSize = 256
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpAAD binds a sealed TOTP secret to its account and device.
func totpAAD(accountID, deviceID string) []byte {
	return []byte("vigil/totp/" + accountID + "/" + deviceID)
}

// SealTOTPSecret seals the secret of the new TOTP device deviceID of accountID with the
// server key, bound to that account and device.
func (k *Keyring) SealTOTPSecret(accountID, deviceID string, secret []byte) (SealedSecret, error) {
	return k.Seal(secret, totpAAD(accountID, deviceID))
}

// OpenTOTPSecret opens the secret SealTOTPSecret sealed for device deviceID of accountID.
func (k *Keyring) OpenTOTPSecret(accountID, deviceID string, s SealedSecret) ([]byte, error) {
	return k.Open(s, totpAAD(accountID, deviceID))
}

// TOTPStep returns the RFC 6238 time step of t.
func TOTPStep(t time.Time) int64 {
	return t.Unix() / int64(TOTPPeriod/time.Second)
}

// TOTPCode returns the 6-digit code of secret at time step step.
func TOTPCode(secret []byte, step int64) (string, error) {
	return hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(step), hotp.ValidateOpts{
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
}

// NormalizeTOTPCode strips spaces; ok is false unless 6 ASCII digits remain.
func NormalizeTOTPCode(code string) (string, bool) {
	c := strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(c) != TOTPDigits {
		return "", false
	}
	for i := 0; i < len(c); i++ {
		if c[i] < '0' || c[i] > '9' {
			return "", false
		}
	}
	return c, true
}

// MatchTOTPStep returns the highest time step within now ± TOTPSkew whose code equals code
// and that is greater than after (the device's last accepted step), comparing every
// candidate in constant time.
func MatchTOTPStep(secret []byte, code string, now time.Time, after int64) (int64, bool, error) {
	c, ok := NormalizeTOTPCode(code)
	if !ok {
		return 0, false, nil
	}
	cur := TOTPStep(now)
	best, found := int64(0), false
	for s := cur - TOTPSkew; s <= cur+TOTPSkew; s++ {
		want, err := TOTPCode(secret, s)
		if err != nil {
			return 0, false, fmt.Errorf("totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(c)) == 1 && s > after {
			best, found = s, true
		}
	}
	return best, found, nil
}

// TOTPKey builds the otpauth key (URL and QR) of a secret for issuer and account (email).
func TOTPKey(secret []byte, issuer, account string) (*otp.Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: secret,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Period: uint(TOTPPeriod / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	return k, nil
}

// TOTPQRPNG renders the otpauth URL of a key as a QRCodeSize x QRCodeSize PNG.
func TOTPQRPNG(k *otp.Key) ([]byte, error) {
	img, err := k.Image(QRCodeSize, QRCodeSize)
	if err != nil {
		return nil, fmt.Errorf("totp qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp qr: %w", err)
	}
	return buf.Bytes(), nil
}
