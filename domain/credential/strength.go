package credential

import (
	"fmt"
	"strings"

	"github.com/ccojocar/zxcvbn-go"
	"github.com/ccojocar/zxcvbn-go/match"
)

// estimateStrength scores password with zxcvbn (0..4) and returns the estimator's feedback:
// a sentence on the score and crack time, a warning per weak pattern the estimator matched,
// and a suggestion. The Go port computes the match sequence but no feedback text, so the
// sentences follow the original zxcvbn's feedback for the same patterns.
func estimateStrength(password string, userInputs []string) (int, []string) {
	res := zxcvbn.PasswordStrength(password, userInputs)
	feedback := []string{fmt.Sprintf("This password is too easy to guess (strength %d of 4; estimated time to crack: %s).",
		res.Score, res.CrackTimeDisplay)}
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			feedback = append(feedback, s)
		}
	}
	for _, m := range res.MatchSequence {
		w, leet := matchWarning(password, m)
		if w != "" {
			add(w)
		}
		if leet {
			add("Predictable substitutions like '@' instead of 'a' don't help very much.")
		}
	}
	add("Add another word or two. Uncommon words are better.")
	return res.Score, feedback
}

// matchWarning returns the warning for one matched pattern, and whether a dictionary match
// needed character substitutions (l33t) to match.
func matchWarning(password string, m match.Match) (string, bool) {
	switch m.Pattern {
	case "dictionary":
		// Dictionary matches index runes; a l33t match's token is the de-substituted word.
		r := []rune(password)
		leet := m.I >= 0 && m.J < len(r) && m.I <= m.J && !strings.EqualFold(string(r[m.I:m.J+1]), m.Token)
		var w string
		switch {
		case m.DictionaryName == "user_inputs":
			w = "Avoid your name or email address in the password."
		case strings.HasPrefix(m.DictionaryName, "Passwords"):
			w = "This is similar to a commonly used password."
		case strings.HasPrefix(m.DictionaryName, "English"):
			w = "A word by itself is easy to guess."
		case strings.Contains(m.DictionaryName, "Names") || strings.HasPrefix(m.DictionaryName, "Surname"):
			w = "Names and surnames by themselves are easy to guess."
		default:
			w = "This contains a common word."
		}
		return w, leet
	case "spatial":
		return "Straight rows of keys and short keyboard patterns are easy to guess.", false
	case "repeat":
		return `Repeats like "aaa" or "abcabcabc" are easy to guess.`, false
	case "sequence":
		return "Sequences like abc or 6543 are easy to guess.", false
	case "date":
		return "Dates and years are often easy to guess.", false
	}
	return "", false
}
