package chsink

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/internal/chtest"
	"github.com/driftline/driftline/schemas"
)

// TestOldTablesGetTheNewColumns: tables an older build created, lacking
// columns the DDL has now (here retrain_requests without decided_at and
// decided_at_ms, as before they existed, and windows without its last
// column), get them at the sink's start, in the DDL's order, and the sink
// then writes rows into them; a second start adds nothing.
func TestOldTablesGetTheNewColumns(t *testing.T) {
	dsn := chtest.DSN(t)
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	ctx := context.Background()
	if _, err := ApplyDDL(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	drop := map[string][]string{
		TableRetrainRequests: {"decided_at", "decided_at_ms"},
		TableWindows:         {"kafka_offset"},
	}
	for table, cols := range drop {
		for _, c := range cols {
			if err := conn.Exec(ctx, "ALTER TABLE "+db+"."+table+" DROP COLUMN "+c); err != nil {
				t.Fatal(err)
			}
		}
	}

	added, err := ApplyDDL(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{TableRetrainRequests + ".decided_at", TableRetrainRequests + ".decided_at_ms", TableWindows + ".kafka_offset"}
	if !slices.Equal(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
	for table := range drop {
		got := columnsInOrder(t, ctx, db, table)
		var names []string
		for _, c := range schemas.ClickHouseTables()[table] {
			names = append(names, c.Name)
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s has columns %v, the DDL %v", table, got, names)
		}
	}
	if again, err := ApplyDDL(ctx, conn, db); err != nil || len(again) != 0 {
		t.Errorf("a second ApplyDDL added %v (err %v), want nothing", again, err)
	}

	// The upgraded table takes the sink's rows.
	f := newFixture(t)
	f.produce(t, f.derived(t)...)
	cfg := Config{DSN: dsn, Database: db, BatchRows: 100, BatchInterval: 100 * time.Millisecond}
	_, stop := runSink(t, cfg, f.kafka, prometheus.NewRegistry())
	defer stop()
	deadline := time.Now().Add(60 * time.Second)
	for chtest.Count(t, conn, "SELECT count() FROM "+db+"."+TableRetrainRequests+" FINAL") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no retrain request row in the upgraded table after 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func columnsInOrder(t *testing.T, ctx context.Context, db, table string) []string {
	t.Helper()
	conn := chtest.Conn(t, chtest.DSN(t))
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", db, table) // in table order
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
