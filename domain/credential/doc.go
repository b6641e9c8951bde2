// Package credential holds Vigil's credential primitives, apart from the aggregates that use
// them: argon2id password hashing in PHC strings (Argon2Hasher), the new-password policy with
// the zxcvbn strength estimate (PasswordPolicy), TOTP codes and their QR rendering, backup
// codes, and the keyring that seals secrets at rest (Keyring, SealedSecret).
//
// It depends on the standard library and crypto libraries only (x/crypto, pquerna/otp,
// zxcvbn), never on package domain: domain imports it.
package credential
