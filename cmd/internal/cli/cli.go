// Package cli is the command-line framework the vigil and vigil-dev commands share: a tree
// of commands, each with one table of options (a double-dash flag and the environment
// variable beside it) that the parsing and the help both read.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Exit codes of the commands.
const (
	ExitOK      = 0
	ExitFailure = 1 // start-up or run-time failure
	ExitUsage   = 2 // bad command line or configuration
)

// Env is what a command may touch of the process: the environment and the standard streams.
type Env struct {
	Lookup func(string) (string, bool)
	Stdout io.Writer
	Stderr io.Writer
}

// Option is one setting of a command: its flag, environment variable, default (as text, ""
// for none) and help. Every command's options form one table that the parsing and the help
// share.
type Option struct {
	Flag, Env, Def, Meta, Help string
	DefHelp                    string // the default as shown in the help when Def is ""
	Boolean                    bool   // a switch: the flag alone means true
}

// Command is one node of the command tree. Name is its words below the program ("serve",
// "projections rebuild"); a leaf has Run, which gets its options already parsed; a group
// ("projections") has only sub-commands.
type Command struct {
	Name    string
	Summary string
	Options []Option
	Run     func(ctx context.Context, s Settings, e Env) int
}

// Program is a command-line program: its name, what it does alone (Root, whose Name is "";
// a Root without Run needs a command) and its command tree, parents before their children.
type Program struct {
	Name string
	Root Command
	// Default names the command Root stands for ("serve"), if any: its messages start with
	// the program's name alone, and the root help shows its flags as "Flags of <Default>".
	Default  string
	Commands []Command
}

// subcommands are the leaves below c (every leaf for the root).
func (p Program) subcommands(c Command) []Command {
	var out []Command
	for _, s := range p.Commands {
		if s.Run != nil && s.Name != c.Name && (c.Name == "" || strings.HasPrefix(s.Name, c.Name+" ")) {
			out = append(out, s)
		}
	}
	return out
}

func names(cs []Command) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// Run is the whole program: it finds the command that args (without the program name) name,
// parses its flags and variables, and returns its exit code. -h, --help and `<program> help
// [command]` print the command's own help on stdout.
func (p Program) Run(ctx context.Context, args []string, e Env) int {
	if len(args) > 0 && args[0] == "help" {
		return p.Run(ctx, append(slices.Clone(args[1:]), "--help"), e)
	}
	cmd, i := p.Root, 0
	for ; i < len(args) && !strings.HasPrefix(args[i], "-"); i++ {
		next := strings.TrimSpace(cmd.Name + " " + args[i])
		k := slices.IndexFunc(p.Commands, func(c Command) bool { return c.Name == next })
		if k < 0 {
			if cmd.Run != nil && cmd.Name != "" {
				break // a leaf's stray argument, reported by its parsing
			}
			fmt.Fprintf(e.Stderr, "%s: unknown command %q; the commands are %s\n", p.Name, next, names(p.subcommands(cmd)))
			p.PrintHelp(e.Stderr, cmd)
			return ExitUsage
		}
		cmd = p.Commands[k]
	}
	rest := args[i:]
	if cmd.Run == nil { // a group without its sub-command
		if slices.ContainsFunc(rest, isHelpFlag) {
			p.PrintHelp(e.Stdout, cmd)
			return ExitOK
		}
		fmt.Fprintf(e.Stderr, "%s needs a command: %s\n", p.Prefix(cmd), names(p.subcommands(cmd)))
		p.PrintHelp(e.Stderr, cmd)
		return ExitUsage
	}
	s, err := ParseOptions(cmd.Options, rest, e.Lookup)
	if errors.Is(err, flag.ErrHelp) {
		p.PrintHelp(e.Stdout, cmd)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "%s: %v\n", p.Prefix(cmd), err)
		p.PrintHelp(e.Stderr, cmd)
		return ExitUsage
	}
	return cmd.Run(ctx, s, e)
}

func isHelpFlag(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

// Prefix starts a command's messages: the program's name for the root and the default
// command, else "<program>: <command>".
func (p Program) Prefix(c Command) string {
	if c.Name == "" || c.Name == p.Default {
		return p.Name
	}
	return p.Name + ": " + c.Name
}

// PrintHelp writes a command's help: its usage line, what it does, its sub-commands and its
// flags with their variables and defaults.
func (p Program) PrintHelp(w io.Writer, c Command) {
	subs := p.subcommands(c)
	full := strings.TrimSpace(p.Name + " " + c.Name)
	switch {
	case c.Name == "" && c.Run != nil:
		fmt.Fprintf(w, "Usage: %s [command] [flags]\n", p.Name)
	case c.Run == nil:
		fmt.Fprintf(w, "Usage: %s <command> [flags]\n", full)
	default:
		fmt.Fprintf(w, "Usage: %s [flags]\n", full)
	}
	fmt.Fprintf(w, "\n%s.\n", strings.ToUpper(c.Summary[:1])+c.Summary[1:])
	if len(subs) > 0 {
		fmt.Fprintln(w, "\nCommands:")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\n`%s <command> --help` shows a command's own flags.\n", p.Name)
	}
	if len(c.Options) == 0 {
		return
	}
	which := "Flags"
	if c.Name == "" && p.Default != "" {
		which = "Flags of " + p.Default
	}
	fmt.Fprintf(w, "\n%s (each can also be set by the environment variable shown; a flag wins over its variable):\n", which)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range c.Options {
		def := o.Def
		if def == "" {
			def = o.DefHelp
		}
		fmt.Fprintf(tw, "  %s\t$%s\t%s (default %s)\n", strings.TrimSpace("--"+o.Flag+" "+o.Meta), o.Env, o.Help, def)
	}
	tw.Flush()
}

// UsageError is a malformed command line (unknown flag, missing value, stray argument): the
// message is followed by the usage.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Setting is one resolved option value and where it came from.
type Setting struct {
	Opt     Option
	Value   string
	FromEnv bool
}

// Settings are a command's resolved options by flag name.
type Settings map[string]Setting

// Label names the setting in messages: the flag, and the variable when the value came from it.
func (s Setting) Label() string {
	if s.FromEnv {
		return "--" + s.Opt.Flag + " (from " + s.Opt.Env + ")"
	}
	return "--" + s.Opt.Flag
}

// Errorf is an error about the setting, starting with its Label.
func (s Setting) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", s.Label(), fmt.Sprintf(format, args...))
}

// flagValue is every option's flag.Value: the text as given.
type flagValue struct {
	value        string
	set, boolean bool
}

func (v *flagValue) String() string     { return v.value }
func (v *flagValue) Set(s string) error { v.value, v.set = s, true; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.boolean }

// ParseOptions reads opts from args and the environment through lookup: a flag wins over its
// variable, a variable set to "" counts as unset, and an unset setting takes its default.
// Flags take one or two dashes. It returns flag.ErrHelp for -h/--help and a UsageError for a
// malformed command line; the values are checked by the command.
func ParseOptions(opts []Option, args []string, lookup func(string) (string, bool)) (Settings, error) {
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*flagValue{}
	for _, o := range opts {
		vals[o.Flag] = &flagValue{boolean: o.Boolean}
		fs.Var(vals[o.Flag], o.Flag, o.Help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, UsageError{flagErrorMessage(err)}
	}
	if fs.NArg() > 0 {
		return nil, UsageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	s := Settings{}
	for _, o := range opts {
		st := Setting{Opt: o, Value: o.Def}
		if v := vals[o.Flag]; v.set {
			st.Value = v.value
		} else if v, ok := lookup(o.Env); ok && v != "" {
			st.Value, st.FromEnv = v, true
		}
		s[o.Flag] = st
	}
	return s, nil
}

// flagErrorMessage rewrites the flag package's messages with the double-dash spelling the
// help uses.
func flagErrorMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + name
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag --" + name + " needs a value"
	}
	return msg
}

// ParseInt reads a whole number of at least minimum.
func ParseInt(s Setting, minimum int64) (int64, error) {
	n, err := strconv.ParseInt(s.Value, 10, 64)
	if err != nil {
		return 0, s.Errorf("%q is not a whole number", s.Value)
	}
	if n < minimum {
		return 0, s.Errorf("%d is below the minimum of %d", n, minimum)
	}
	return n, nil
}

// NewLogger logs JSON to w, or text when w is a terminal.
func NewLogger(w io.Writer) *slog.Logger {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, nil))
		}
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// Main runs a command's run function as the process: with the real environment, a context
// cancelled by SIGINT or SIGTERM (a second signal kills as usual), and run's result as the
// exit code. It does not return.
func Main(run func(ctx context.Context, args []string, e Env) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], Env{Lookup: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
