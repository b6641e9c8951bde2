package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Exit codes of the vigil command.
const (
	exitOK      = 0
	exitFailure = 1 // start-up or run-time failure
	exitUsage   = 2 // bad command line or configuration
)

// env is what a command may touch of the process: the environment and the standard streams.
type env struct {
	lookup func(string) (string, bool)
	stdout io.Writer
	stderr io.Writer
}

// option is one setting of a command: its flag, environment variable, default (as text, ""
// for none) and help. Every command's options form one table that the parsing and the help
// share.
type option struct {
	flag, env, def, meta, help string
	defHelp                    string // the default as shown in the help when def is ""
	boolean                    bool   // a switch: the flag alone means true
}

// command is one node of the command tree. name is its words ("serve", "dev seed"); a leaf
// has run, which gets its options already parsed; a group ("dev", "projections") has only
// sub-commands.
type command struct {
	name    string
	summary string
	options []option
	run     func(ctx context.Context, s settings, e env) int
}

// root is `vigil` alone: serve, with a help that also lists the commands.
func root() command {
	return command{summary: "Vigil, the event-sourced account-security service", options: serveOptions, run: runServe}
}

// commands is the command tree, parents before their children.
func commands() []command {
	return []command{
		{name: "serve", summary: "run the HTTP server (the default when no command is given)", options: serveOptions, run: runServe},
		{name: "projections", summary: "maintain the read models"},
		{name: "projections rebuild", summary: "rebuild every read model from the log into a fresh file, with a progress bar, and swap it in while a server keeps serving (takes serve's flags)", options: serveOptions, run: runProjectionsRebuild},
		{name: "dev", summary: "development tools that write synthetic events to the embedded store"},
		{name: "dev load", summary: "append synthetic events to the embedded store, printing each acknowledged position", options: devLoadOptions, run: runDevLoad},
		{name: "dev seed", summary: "write a realistic synthetic history (accounts, sign-ins, failures, credential changes) to the embedded store", options: devSeedOptions, run: runDevSeed},
	}
}

// subcommands are the leaves below c (every leaf for the root).
func subcommands(c command) []command {
	var out []command
	for _, s := range commands() {
		if s.run != nil && s.name != c.name && (c.name == "" || strings.HasPrefix(s.name, c.name+" ")) {
			out = append(out, s)
		}
	}
	return out
}

func names(cs []command) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// run is the whole program: it finds the command that args (without the program name) name,
// parses its flags and variables, and returns its exit code. -h, --help and `vigil help
// [command]` print the command's own help on stdout.
func run(ctx context.Context, args []string, e env) int {
	if len(args) > 0 && args[0] == "help" {
		return run(ctx, append(slices.Clone(args[1:]), "--help"), e)
	}
	cmd, i := root(), 0
	for ; i < len(args) && !strings.HasPrefix(args[i], "-"); i++ {
		next := strings.TrimSpace(cmd.name + " " + args[i])
		k := slices.IndexFunc(commands(), func(c command) bool { return c.name == next })
		if k < 0 {
			if cmd.run != nil && cmd.name != "" {
				break // a leaf's stray argument, reported by its parsing
			}
			fmt.Fprintf(e.stderr, "vigil: unknown command %q; the commands are %s\n", next, names(subcommands(cmd)))
			printHelp(e.stderr, cmd)
			return exitUsage
		}
		cmd = commands()[k]
	}
	rest := args[i:]
	if cmd.run == nil { // a group without its sub-command
		if slices.ContainsFunc(rest, isHelpFlag) {
			printHelp(e.stdout, cmd)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "vigil: %s needs a command: %s\n", cmd.name, names(subcommands(cmd)))
		printHelp(e.stderr, cmd)
		return exitUsage
	}
	s, err := parseOptions(cmd.options, rest, e.lookup)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(e.stdout, cmd)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", prefix(cmd), err)
		printHelp(e.stderr, cmd)
		return exitUsage
	}
	return cmd.run(ctx, s, e)
}

func isHelpFlag(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

// prefix starts a command's messages: "vigil" for serve, else "vigil: <command>".
func prefix(c command) string {
	if c.name == "" || c.name == "serve" {
		return "vigil"
	}
	return "vigil: " + c.name
}

// printHelp writes a command's help: its usage line, what it does, its sub-commands and its
// flags with their variables and defaults.
func printHelp(w io.Writer, c command) {
	subs := subcommands(c)
	switch {
	case c.name == "":
		fmt.Fprintln(w, "Usage: vigil [command] [flags]")
	case c.run == nil:
		fmt.Fprintf(w, "Usage: vigil %s <command> [flags]\n", c.name)
	default:
		fmt.Fprintf(w, "Usage: vigil %s [flags]\n", c.name)
	}
	fmt.Fprintf(w, "\n%s.\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
	if len(subs) > 0 {
		fmt.Fprintln(w, "\nCommands:")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\n`vigil <command> --help` shows a command's own flags.\n")
	}
	if len(c.options) == 0 {
		return
	}
	which := "Flags"
	if c.name == "" {
		which = "Flags of serve"
	}
	fmt.Fprintf(w, "\n%s (each can also be set by the environment variable shown; a flag wins over its variable):\n", which)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range c.options {
		def := o.def
		if def == "" {
			def = o.defHelp
		}
		fmt.Fprintf(tw, "  %s\t$%s\t%s (default %s)\n", strings.TrimSpace("--"+o.flag+" "+o.meta), o.env, o.help, def)
	}
	tw.Flush()
}

// usageError is a malformed command line (unknown flag, missing value, stray argument): the
// message is followed by the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// setting is one resolved option value and where it came from.
type setting struct {
	opt     option
	value   string
	fromEnv bool
}

// settings are a command's resolved options by flag name.
type settings map[string]setting

// label names the setting in messages: the flag, and the variable when the value came from it.
func (s setting) label() string {
	if s.fromEnv {
		return "--" + s.opt.flag + " (from " + s.opt.env + ")"
	}
	return "--" + s.opt.flag
}

func (s setting) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", s.label(), fmt.Sprintf(format, args...))
}

// flagValue is every option's flag.Value: the text as given.
type flagValue struct {
	value        string
	set, boolean bool
}

func (v *flagValue) String() string     { return v.value }
func (v *flagValue) Set(s string) error { v.value, v.set = s, true; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.boolean }

// parseOptions reads opts from args and the environment through lookup: a flag wins over its
// variable, a variable set to "" counts as unset, and an unset setting takes its default.
// Flags take one or two dashes. It returns flag.ErrHelp for -h/--help and a usageError for a
// malformed command line; the values are checked by the command.
func parseOptions(opts []option, args []string, lookup func(string) (string, bool)) (settings, error) {
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*flagValue{}
	for _, o := range opts {
		vals[o.flag] = &flagValue{boolean: o.boolean}
		fs.Var(vals[o.flag], o.flag, o.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{flagErrorMessage(err)}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	s := settings{}
	for _, o := range opts {
		st := setting{opt: o, value: o.def}
		if v := vals[o.flag]; v.set {
			st.value = v.value
		} else if v, ok := lookup(o.env); ok && v != "" {
			st.value, st.fromEnv = v, true
		}
		s[o.flag] = st
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
