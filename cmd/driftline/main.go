// Command driftline is Driftline's one binary. Subcommands:
//
//	demo       the whole loop on an embedded broker, with a shift injected
//	run        the production roles against a Kafka cluster
//	broker     an embedded Kafka-protocol broker for development
//	simulate   the storefront load generator with drift scenarios
//	models     the model registry from the command line
//	train      offline training from a JSON-lines file, or reproducing a version
//	bench      the feature stage's measured speed and state size
//
// This file only wires: it parses flags, builds components and runs them
// until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/driftline/driftline/consumers"
)

const usage = `driftline keeps e-commerce models honest in production.

Usage:
  driftline demo     [--json] [--seed N] [--scenario both|covariate|concept|none] [--clickhouse DSN]
  driftline run      --brokers HOST:PORT[,...] --roles features,monitor,trainer,sink [--clickhouse DSN]
  driftline broker   [--listen 127.0.0.1:9092] [--data-dir DIR]
  driftline simulate [--brokers ADDRS] [--seed N] [--scenario S] [--shift-at 3h] [--duration 1h]
  driftline models   list|history|show|promote|rollback [--json] [--version N] [--alias A] [--brokers ADDRS] [--model NAME]
  driftline train    --data FILE [--json] | --brokers ADDRS --version N [--json] | --contract --data IN --out OUT
  driftline bench    [--json] [--users N] [--e2e-events N]
  driftline drift    --reference A.jsonl --current B.jsonl [--json]

Run 'driftline <command> -h' for a command's flags.
`

// errUsage marks a command-line mistake: exit status 2 instead of 1.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))

	cmds := map[string]func(context.Context, []string, *slog.Logger) error{
		"demo": demoCmd, "run": runCmd, "broker": brokerCmd, "simulate": simulateCmd, "models": modelsCmd, "bench": benchCmd,
		"drift": driftCmd, "train": trainCmd,
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
			fmt.Print(usage)
			return
		}
		fmt.Fprintf(os.Stderr, "driftline: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := cmd(ctx, os.Args[2:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "driftline %s: %v\n", os.Args[1], err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// logLevel reads DRIFTLINE_LOG_LEVEL (debug, info, warn, error; default info).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv(consumers.EnvLogLevel))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("driftline "+name, flag.ContinueOnError)
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	return nil
}
