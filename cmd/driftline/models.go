package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

const modelsUsage = "models needs a subcommand: list, show, history, promote or rollback"

func modelsCmd(ctx context.Context, args []string, log *slog.Logger) error {
	return runModels(ctx, args, log, os.Stdout)
}

// runModels is `driftline models`, writing to out.
func runModels(ctx context.Context, args []string, log *slog.Logger, out io.Writer) error {
	subs := []string{"list", "show", "history", "promote", "rollback"}
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		return fmt.Errorf("%w: %s", errUsage, modelsUsage)
	}
	sub := args[0]
	fs := newFlags("models " + sub)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers")
	model := fs.String("model", "purchase_propensity", "model name")
	version := fs.Int("version", 0, "show: version to show (default: the champion); promote: version to move the alias to (required)")
	alias := fs.String("alias", schemas.AliasChampion, "history, promote: the alias")
	reason := fs.String("reason", "", "promote, rollback: why, recorded on the alias move")
	asJSON := fs.Bool("json", false, "print JSON (show always prints JSON)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if sub == "promote" && *version <= 0 {
		return fmt.Errorf("%w: models promote needs --version N", errUsage)
	}
	kcfg, err := kafkaConfig(*brokers)
	if err != nil {
		return err
	}
	feed := consumers.NewModelFeed(kcfg, log)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- feed.Run(ctx) }()
	select {
	case <-feed.Ready():
	case err := <-errc:
		return fmt.Errorf("cannot read the registry: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("cannot read the registry from %s: %w", *brokers, ctx.Err())
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	switch sub {
	case "show":
		v := *version
		if v == 0 {
			if c := feed.Champion(*model); c != nil {
				v = c.Version
			}
		}
		mv := feed.Version(*model, v)
		if mv == nil {
			return fmt.Errorf("model %s has no version %d", *model, v)
		}
		return enc.Encode(mv)
	case "history":
		return printHistory(out, enc, feed.AliasHistory(*model, *alias), *asJSON)
	case "promote", "rollback":
		pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: kcfg.Brokers, ClientOptions: kcfg.NamedClientOptions(log, "models")}, watermill.NopLogger{})
		if err != nil {
			return fmt.Errorf("cannot create registry publisher: %w", err)
		}
		defer pub.Close()
		reg := trainers.NewRegistry(feed, pub, kcfg.Topics.Models)
		var move schemas.AliasMove
		if sub == "promote" {
			move, err = reg.MoveAlias(*model, *alias, *version, schemas.DecisionPromoted, orDefault(*reason, "promoted by an operator"), nil)
		} else {
			move, err = reg.Rollback(*model, schemas.DecisionRollback, orDefault(*reason, "rolled back by an operator"), nil)
		}
		if err != nil {
			return err
		}
		// Read the move back, so the command returns once every reader of
		// the registry can see it.
		for {
			// Seq is not unique (two writers may race on it) and another
			// move may follow ours: look for this move anywhere.
			if slices.ContainsFunc(feed.AliasHistory(*model, move.Alias), func(m schemas.AliasMove) bool {
				return m.Seq == move.Seq && m.At.Equal(move.At) && m.Version == move.Version
			}) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cannot read back the %s move of %s: %w", move.Alias, *model, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		if *asJSON {
			return enc.Encode(move)
		}
		_, err = fmt.Fprintf(out, "%s of %s moved v%d -> v%d (%s, seq %d)\n", move.Alias, move.Model, move.Previous, move.Version, move.Decision, move.Seq)
		return err
	}
	return listVersions(out, enc, feed, *model, *asJSON)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func listVersions(out io.Writer, enc *json.Encoder, feed *consumers.ModelFeed, model string, asJSON bool) error {
	aliasesOf := map[int][]string{}
	champ := feed.Champion(model)
	for _, a := range []string{schemas.AliasChampion, schemas.AliasShadow, schemas.AliasChallenger, schemas.AliasRetired} {
		v := feed.Alias(model, a)
		// A shadow at or below the champion was promoted (or overtaken):
		// it is no longer scored.
		if v == nil || a == schemas.AliasShadow && champ != nil && v.Version <= champ.Version {
			continue
		}
		aliasesOf[v.Version] = append(aliasesOf[v.Version], a)
	}
	versions := feed.Versions(model)
	if asJSON {
		type row struct {
			Version         int                  `json:"version"`
			Champion        bool                 `json:"champion"`
			Aliases         []string             `json:"aliases"`
			Parent          int                  `json:"parent"`
			CreatedAt       time.Time            `json:"created_at"`
			Backend         string               `json:"backend"`
			Rows            int                  `json:"rows"`
			Dataset         *schemas.Dataset     `json:"dataset,omitempty"`
			Hyperparameters map[string]float64   `json:"hyperparameters,omitempty"`
			Metrics         schemas.ModelMetrics `json:"metrics"`
		}
		rows := []row{}
		for _, v := range versions {
			al := append([]string{}, aliasesOf[v.Version]...)
			rows = append(rows, row{v.Version, slices.Contains(al, schemas.AliasChampion), al, v.Parent, v.CreatedAt, v.Backend, v.Rows,
				v.Dataset, v.Hyperparameters, v.Metrics})
		}
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tALIAS\tPARENT\tCREATED\tBACKEND\tROWS\tHOLDOUT AUC\tCHAMPION AUC\tGATE\tDATASET")
	for _, v := range versions {
		ds := ""
		if v.Dataset != nil && len(v.Dataset.SHA256) >= 12 {
			ds = v.Dataset.SHA256[:12]
		}
		fmt.Fprintf(tw, "v%d\t%s\t%d\t%s\t%s\t%d\t%.4f\t%.4f\t%v\t%s\n", v.Version, strings.Join(aliasesOf[v.Version], ","), v.Parent,
			v.CreatedAt.Format(time.RFC3339), v.Backend, v.Rows, v.Metrics.AUC, v.Metrics.ChampionAUC, v.Metrics.GatePassed, ds)
	}
	return tw.Flush()
}

func printHistory(out io.Writer, enc *json.Encoder, moves []schemas.AliasMove, asJSON bool) error {
	if asJSON {
		if moves == nil {
			moves = []schemas.AliasMove{}
		}
		return enc.Encode(moves)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tALIAS\tFROM\tTO\tDECISION\tREASON")
	for _, m := range moves {
		fmt.Fprintf(tw, "%d\t%s\t%s\tv%d\tv%d\t%s\t%s\n", m.Seq, m.At.Format(time.RFC3339), m.Alias, m.Previous, m.Version, m.Decision, m.Reason)
	}
	return tw.Flush()
}
