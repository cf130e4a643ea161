package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

func modelsCmd(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return fmt.Errorf("%w: models needs a subcommand: list or show (promote and rollback are not built yet)", errUsage)
	}
	sub := args[0]
	fs := newFlags("models " + sub)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers")
	model := fs.String("model", "purchase_propensity", "model name")
	version := fs.Int("version", 0, "version to show (default: the champion)")
	asJSON := fs.Bool("json", false, "list: print JSON (show always prints JSON)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	kcfg := consumers.KafkaConfig{Brokers: consumers.ParseBrokers(*brokers)}
	kcfg.SetDefaults()
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
	champ := 0
	if c := feed.Champion(*model); c != nil {
		champ = c.Version
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if sub == "show" {
		v := *version
		if v == 0 {
			v = champ
		}
		mv := feed.Version(*model, v)
		if mv == nil {
			return fmt.Errorf("model %s has no version %d", *model, v)
		}
		return enc.Encode(mv)
	}
	versions := feed.Versions(*model)
	if *asJSON {
		type row struct {
			Version   int                  `json:"version"`
			Champion  bool                 `json:"champion"`
			Parent    int                  `json:"parent"`
			CreatedAt time.Time            `json:"created_at"`
			Backend   string               `json:"backend"`
			Rows      int                  `json:"rows"`
			Metrics   schemas.ModelMetrics `json:"metrics"`
		}
		rows := []row{}
		for _, v := range versions {
			rows = append(rows, row{v.Version, v.Version == champ, v.Parent, v.CreatedAt, v.Backend, v.Rows, v.Metrics})
		}
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tALIAS\tPARENT\tCREATED\tBACKEND\tROWS\tHOLDOUT AUC\tCHAMPION AUC\tGATE")
	for _, v := range versions {
		alias := ""
		if v.Version == champ {
			alias = "champion"
		}
		fmt.Fprintf(tw, "v%d\t%s\t%d\t%s\t%s\t%d\t%.4f\t%.4f\t%v\n", v.Version, alias, v.Parent,
			v.CreatedAt.Format(time.RFC3339), v.Backend, v.Rows, v.Metrics.AUC, v.Metrics.ChampionAUC, v.Metrics.GatePassed)
	}
	return tw.Flush()
}
