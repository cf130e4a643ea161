package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/driftline/driftline/monitors"
)

// exitDrift is the exit status of `driftline drift --fail-on-drift` when
// the dataset drifted.
const exitDrift = 3

// driftCmd compares two JSON-lines files offline, feature by feature
// (monitors.ReadColumns, monitors.CompareTables), and prints the verdicts.
// It exits 0 whatever it finds, unless --fail-on-drift is given and the
// dataset drifted: then it exits 3, so a CI step fails on drift but can
// tell it from an error (1) or a usage mistake (2).
func driftCmd(ctx context.Context, args []string, _ *slog.Logger) error {
	fs := newFlags("drift")
	refPath := fs.String("reference", "", "reference JSON-lines file (required)")
	curPath := fs.String("current", "", "current JSON-lines file (required)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	methodSpec := fs.String("method", "", "per-feature overrides: name=ks|wasserstein|psi|jensenshannon|chisquare|z,... (default: Evidently's choice)")
	featureSpec := fs.String("features", "", "comma-separated names: of the entries of a Driftline record's \"values\" (default value_0, value_1, …), or the fields of flat objects to compare (default all)")
	failOnDrift := fs.Bool("fail-on-drift", false, "exit with status 3 when the dataset drifts (share of drifted features >= 0.5)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *refPath == "" || *curPath == "" {
		return fmt.Errorf("%w: drift needs --reference and --current", errUsage)
	}
	methods, err := monitors.ParseMethods(*methodSpec)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var names []string
	for n := range strings.SplitSeq(*featureSpec, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}

	start := time.Now()
	var ref, cur *monitors.Table
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { ref, err = readTable(gctx, "reference", *refPath, names); return err })
	g.Go(func() (err error) { cur, err = readTable(gctx, "current", *curPath, names); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	rep, err := monitors.CompareTables(ref, cur, monitors.OfflineConfig{Methods: methods})
	if err != nil {
		return err
	}
	rep.Seconds = time.Since(start).Seconds()

	out := bufio.NewWriter(os.Stdout)
	if *asJSON {
		b, err := rep.MarshalJSON()
		if err != nil {
			return fmt.Errorf("cannot encode the report: %w", err)
		}
		out.Write(b)
		out.WriteByte('\n')
	} else {
		printDriftTable(out, rep, *refPath, *curPath)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("cannot print the report: %w", err)
	}
	if *failOnDrift && rep.DatasetDrift {
		os.Exit(exitDrift)
	}
	return nil
}

// readTable reads one input file.
func readTable(ctx context.Context, what, path string, names []string) (*monitors.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open the %s: %w", what, err)
	}
	defer f.Close()
	t, err := monitors.ReadColumns(f, monitors.ReadOptions{Names: names})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if t.Rows == 0 {
		return nil, fmt.Errorf("%s %s: no rows", what, path)
	}
	return t, ctx.Err()
}

// printDriftTable prints the report as an aligned table and a summary.
func printDriftTable(w io.Writer, rep *monitors.DriftReport, refPath, curPath string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tTYPE\tMETHOD\tSTATISTIC\tP-VALUE\tTHRESHOLD\tVERDICT\tNULLS REF/CUR")
	for _, f := range rep.Features {
		method, threshold, verdict := string(f.Method), "", "no drift"
		if f.Method.HasPValue() {
			threshold = fmt.Sprintf("p < %g", f.Threshold)
		} else if f.Method != "" {
			threshold = fmt.Sprintf(">= %g", f.Threshold)
		}
		switch {
		case f.NoData():
			method, verdict = "-", "no data"
		case f.Drift:
			verdict = "DRIFT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\n", f.Name, f.Type, method,
			formatStat(f.Statistic), formatStat(f.PValue), threshold, verdict, f.ReferenceNulls, f.CurrentNulls)
	}
	tw.Flush()
	dataset := "no"
	if rep.DatasetDrift {
		dataset = "YES"
	}
	fmt.Fprintf(w, "\nreference %s: %d rows; current %s: %d rows\n", refPath, rep.RowsReference, curPath, rep.RowsCurrent)
	fmt.Fprintf(w, "%d of %d features drifted (%.1f%%); dataset drift: %s (at >= %.0f%% drifted); %.2f s\n",
		rep.DriftedFeatures, rep.ComparedFeatures, 100*rep.ShareDrifted, dataset, 100*rep.DriftShare, rep.Seconds)
}

// formatStat prints a statistic or p-value with 4 significant digits, "-"
// when undefined.
func formatStat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.IsInf(x, 1):
		return "+Inf"
	case x != 0 && math.Abs(x) < 1e-4:
		return fmt.Sprintf("%.2e", x)
	}
	return fmt.Sprintf("%.4g", x)
}
