package schemas

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

// clickhouseDDL holds the ClickHouse tables the sink writes, one statement
// per file, applied in file-name order.
//
//go:embed clickhouse/*.sql
var clickhouseDDL embed.FS

// DDLDatabase is the placeholder for the database name in the DDL files.
const DDLDatabase = "{database}"

// ClickHouseDDL returns the statements that create the sink's database and
// tables in database, in the order they must run. Every statement is
// idempotent (IF NOT EXISTS), so they are applied at every start. The DDL is
// written for ClickHouse 18.16 and current servers alike (see
// schemas/clickhouse/).
func ClickHouseDDL(database string) []string {
	names, err := fs.Glob(clickhouseDDL, "clickhouse/*.sql")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		b, err := clickhouseDDL.ReadFile(n)
		if err != nil {
			panic(err) // embedded
		}
		out = append(out, strings.ReplaceAll(stripSQLComments(string(b)), DDLDatabase, database))
	}
	return out
}

// stripSQLComments drops whole-line "--" comments: 18.16's native protocol
// accepts them, but a statement that is only a comment is an error.
func stripSQLComments(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return strings.TrimSpace(b.String())
}

// ClickHouseColumn is one column of a DDL table.
type ClickHouseColumn struct {
	Name, Type string
}

// ClickHouseTables parses the DDL into table name -> columns in order. The
// sink builds its INSERT column lists from it and a test checks it against
// the Go record types and the JSON Schema files.
func ClickHouseTables() map[string][]ClickHouseColumn {
	tables := map[string][]ClickHouseColumn{}
	for _, stmt := range ClickHouseDDL("db") {
		head, body, ok := strings.Cut(stmt, "(")
		if !ok || !strings.HasPrefix(head, "CREATE TABLE") {
			continue
		}
		fields := strings.Fields(head)
		name := strings.TrimPrefix(fields[len(fields)-1], "db.")
		body, _, _ = strings.Cut(body, "\n) ENGINE")
		var cols []ClickHouseColumn
		for line := range strings.SplitSeq(body, "\n") {
			line = strings.TrimSuffix(strings.TrimSpace(line), ",")
			if line == "" {
				continue
			}
			n, typ, _ := strings.Cut(line, " ")
			cols = append(cols, ClickHouseColumn{Name: strings.Trim(n, "`"), Type: strings.TrimSpace(typ)})
		}
		tables[name] = cols
	}
	return tables
}
