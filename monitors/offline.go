package monitors

// Offline drift: two JSON-lines files compared feature by feature, the
// engine of `driftline drift`. ReadColumns turns a file into columns,
// CompareTables chooses a statistic per feature the way Evidently's
// DataDriftPreset does by default and runs the statistics of drift.go on
// them. Both are pure: no Kafka, no metrics; the command only opens files
// and prints.
//
// Method choice (Evidently's documented defaults, checked against
// evidently.legacy.calculations.stattests.registry._get_default_stattest;
// n is the number of non-null reference values of the feature, u the
// number of distinct non-null values in reference and current together):
//
//	                      n <= 1000                     n > 1000
//	numeric, u > 5        ks           p < 0.05         wasserstein (normed)  >= 0.1
//	numeric, u <= 5       chisquare    p < 0.05 (u > 2) jensenshannon         >= 0.1
//	                      z            p < 0.05 (u <= 2)
//	categorical           chisquare    p < 0.05 (u > 2) jensenshannon         >= 0.1
//	                      z            p < 0.05 (u <= 2)
//
// A numeric column with few distinct values is thus compared as a
// categorical one (its values are the categories) while its type stays
// numeric, as Evidently reports it; note that Evidently counts the distinct
// values of reference and current together, not of the reference alone.
// Nulls are dropped before anything is counted, as Evidently drops NaN; a
// feature with no value on one side gets no statistic and is left out of
// the share. The dataset drifts when the share of drifted features is at
// least 0.5 (DatasetDriftMetric's drift_share).
//
// Where this differs from Evidently, on purpose: psi, and jensenshannon on
// a numeric feature with more than 5 values (overrides only), bin by the
// reference's deciles as internal/profile builds them for the online
// monitor (Evidently: Sturges bins over both samples), and PSI floors empty
// bins at PSIEpsilon (Evidently: its own smaller floor). The z-test's
// p-value is computed as erfc(|z|/√2) rather than 2(1-Φ(|z|)), which agrees
// to 1e-16 absolute and keeps the digits of small p-values.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/profile"
)

// ColumnType is what a feature's values are.
type ColumnType uint8

// Column types. A column whose every value is null has no type yet.
const (
	ColumnUnknown     ColumnType = iota // every value null so far
	ColumnNumeric                       // JSON numbers
	ColumnCategorical                   // JSON strings or booleans
)

// String returns "numeric", "categorical" or "unknown".
func (t ColumnType) String() string {
	switch t {
	case ColumnNumeric:
		return "numeric"
	case ColumnCategorical:
		return "categorical"
	}
	return "unknown"
}

// InputFormat is the shape of the lines ReadColumns reads.
type InputFormat uint8

// Input formats.
const (
	// FormatAuto detects the format from the first non-blank line:
	// FormatRecords when its object has a top-level "values" array,
	// FormatObjects otherwise.
	FormatAuto InputFormat = iota
	// FormatObjects is one flat JSON object per line: every top-level field
	// with a number is a numeric feature, with a string or boolean a
	// categorical one; nested objects and arrays are ignored.
	FormatObjects
	// FormatRecords is Driftline's driftline.features or driftline.labels
	// records (schemas.FeatureVector, schemas.Label): the features are the
	// entries of the "values" array, every other field is ignored.
	FormatRecords
)

// String returns "auto", "objects" or "records".
func (f InputFormat) String() string {
	switch f {
	case FormatObjects:
		return "objects"
	case FormatRecords:
		return "records"
	}
	return "auto"
}

// Column is one feature of a Table: its non-null values in file order.
type Column struct {
	Name string
	Type ColumnType
	// Values are the numeric values (ColumnNumeric). CompareTables sorts
	// them in place.
	Values []float64
	// Codes are the categories of a ColumnCategorical column, one per
	// non-null value, as indexes into Categories.
	Codes []int32
	// Categories are the distinct values of a categorical column in order
	// of first appearance; booleans are "true" and "false".
	Categories []string
	// Nulls is the number of rows where the feature was null or absent.
	Nulls int

	index map[string]int32 // category -> code
}

// Count returns the number of non-null values.
func (c *Column) Count() int {
	if c.Type == ColumnCategorical {
		return len(c.Codes)
	}
	return len(c.Values)
}

// Table is a JSON-lines file read into columns.
type Table struct {
	Rows    int // non-blank lines
	Format  InputFormat
	Columns []*Column // objects: in order of first appearance (or of ReadOptions.Names); records: in value order
}

// Column returns the column named name, or nil.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ReadOptions configures ReadColumns.
type ReadOptions struct {
	// Names are, for FormatRecords, the names of the entries of "values"
	// (every record must have exactly len(Names) values; without Names
	// they are value_0, value_1, … and the first record fixes how many).
	// For FormatObjects they select the features kept (all when empty);
	// each must occur in the input.
	Names []string
	// Format forces the input format; FormatAuto detects it.
	Format InputFormat
	// SizeHint is the input's size in bytes, used to preallocate the
	// columns from the length of the first line. ReadColumns asks an input
	// with a Stat method (an *os.File) itself when it is 0.
	SizeHint int64

	// tokenizerOnly turns the fast path off (tests and benchmarks).
	tokenizerOnly bool
}

// LineError is a line ReadColumns could not read; ReadColumns returns it
// wrapped, find it with errors.As.
type LineError struct {
	Line int // 1-based, counting blank lines
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ErrMixedTypes is the cause of a LineError when a feature holds a number
// on one line and a string or boolean on another.
var ErrMixedTypes = errors.New("mixed value types")

// offlineReadBufferSize is the bufio buffer ReadColumns reads through; a
// longer line is assembled from several reads.
const offlineReadBufferSize = 1 << 20

// ReadColumns reads JSON lines into a Table: one JSON object per line, blank
// lines skipped, nulls and absent fields counted per feature. A line that is
// not one valid JSON object, a feature whose values change between number
// and string or boolean (ErrMixedTypes), a number out of float64 range or a
// field repeated in one object is an error naming the line (a LineError);
// nothing is skipped silently.
//
// Lines are parsed in one of two ways, with the same result. The general
// one is segmentio's json.Tokenizer with a grammar check on its tokens: it
// reads every JSON object and is the only one that reports errors. Before
// it, a fast path scans the lines nearly every exporter writes (one object
// of scalar fields, or a Driftline record; strings of printable ASCII
// without escapes) in a single strict pass and hands any other line, valid
// or not, to the Tokenizer: the Tokenizer spends ~11 ns per token, 2.3 µs
// on a row of 50 numbers, which alone would use half the time budget of
// `driftline drift`. Values go to per-feature columns preallocated from
// the input size, categories are interned per feature, so reading
// allocates nothing per value (TestOfflineReadAllocs).
func ReadColumns(r io.Reader, opts ReadOptions) (*Table, error) {
	size := opts.SizeHint
	if size <= 0 {
		switch s := r.(type) {
		case interface{ Stat() (fs.FileInfo, error) }:
			if fi, err := s.Stat(); err == nil && fi.Mode().IsRegular() {
				size = fi.Size()
			}
		case interface{ Len() int }: // strings.Reader, bytes.Reader, bytes.Buffer
			size = int64(s.Len())
		}
	}
	p := newTableReader(opts, size)
	bufSize := offlineReadBufferSize
	if size > 0 {
		bufSize = int(min(int64(offlineReadBufferSize), max(size+1, 4096)))
	}
	br := bufio.NewReaderSize(r, bufSize)
	var long []byte
	inLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			inLong = true
			continue
		}
		line := chunk
		if inLong {
			long = append(long, chunk...)
			line, inLong = long, false
		}
		if len(line) > 0 {
			if perr := p.readLine(line); perr != nil {
				return nil, fmt.Errorf("cannot read the input: %w", perr)
			}
			long = long[:0]
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read the input after line %d: %w", p.line, err)
		}
	}
	return p.finish()
}

// tableReader is ReadColumns' state for one input.
//
// Values go first into a row-major block (one slot per column and row, NaN
// for none: JSON has no NaN; categories as their codes) and from there, a
// block at a time, column by column into the Columns. Appending value by
// value to 50 columns is about three times slower: 50 interleaved write
// streams defeat the hardware prefetcher.
type tableReader struct {
	opts    ReadOptions
	size    int64
	tok     *json.Tokenizer
	t       *Table
	line    int
	estRows int
	stack   []byte // open '{' and '[' of the current line

	blk     []float64 // blkRows complete rows of width slots, then the row being read
	width   int
	blkRows int
	row     []float64 // the slots of the row being read
	saved   []float64

	// objects
	keys   []keyInfo
	byName map[string]int32 // top-level key -> index into keys
	keep   bool             // only the features of opts.Names
	hint   []int32          // keys index of the k-th key of the previous row

	// records
	nValues int // values per record, -1 until known
}

// offlineBlockValues is the size of the row-major block in float64s (256 KiB).
const offlineBlockValues = 1 << 15

// keyInfo is a top-level key seen in FormatObjects: its raw token (to
// recognise it cheaply), its column (-1 until its first scalar value: a key
// that only ever holds objects or arrays is no feature), whether it is
// kept, and a stamp of the last row it was seen in, to catch a repeated
// field: 2·row by the Tokenizer path, 2·row+1 by the fast path, so that a
// line the fast path hands over is not taken for a repetition; -1 never.
type keyInfo struct {
	name string
	raw  string
	col  int32
	kept bool
	typ  ColumnType // the column's type as the fast path last saw it
	seen int
	// A raw token of printable ASCII up to 8 bytes, as a little-endian
	// word and its mask (0 otherwise): the fast path recognises the key it
	// expects with one comparison.
	prefix, pmask uint64
}

// newKeyInfo returns the keyInfo of a key first seen as the token raw.
func newKeyInfo(name, raw string, kept bool) keyInfo {
	ki := keyInfo{name: name, raw: raw, col: -1, kept: kept, seen: -1}
	if len(raw) <= 8 && scanPlainJSONString([]byte(raw), 1) == len(raw)-1 {
		var w [8]byte
		copy(w[:], raw)
		ki.prefix = binary.LittleEndian.Uint64(w[:])
		ki.pmask = 1<<(8*uint(len(raw))) - 1
		if len(raw) == 8 {
			ki.pmask = ^uint64(0)
		}
	}
	return ki
}

func newTableReader(opts ReadOptions, size int64) *tableReader {
	return &tableReader{
		opts:    opts,
		size:    size,
		tok:     json.NewTokenizer(nil),
		t:       &Table{Format: opts.Format},
		byName:  map[string]int32{},
		nValues: -1,
	}
}

// readLine reads one line (with its '\n', if any).
func (p *tableReader) readLine(b []byte) error {
	p.line++
	b = bytes.TrimRight(b, "\r\n")
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if p.t.Rows == 0 {
		if err := p.start(b); err != nil {
			return &LineError{Line: p.line, Err: err}
		}
	}
	p.beginRow()
	if !p.fastRow(b) {
		if err := p.parseRow(b); err != nil {
			return &LineError{Line: p.line, Err: err}
		}
	}
	p.t.Rows++
	p.endRow()
	return nil
}

// start settles the format and the columns on the first non-blank line.
func (p *tableReader) start(first []byte) error {
	if p.size > 0 {
		est := p.size / int64(len(first)+1)
		p.estRows = int(min(est+est/16+64, 1<<31-1))
	}
	if p.t.Format == FormatAuto {
		p.t.Format = FormatObjects
		if hasValuesArray(p.tok, first) {
			p.t.Format = FormatRecords
		}
	}
	seen := map[string]bool{}
	for _, n := range p.opts.Names {
		if seen[n] {
			return fmt.Errorf("feature %q named twice", n)
		}
		seen[n] = true
	}
	switch p.t.Format {
	case FormatObjects:
		if len(p.opts.Names) > 0 {
			p.keep = true
			for _, n := range p.opts.Names {
				// Columns in the order asked for.
				ki := newKeyInfo(n, strconv.Quote(n), true)
				ki.col = int32(len(p.t.Columns))
				p.keys = append(p.keys, ki)
				p.byName[n] = int32(len(p.keys) - 1)
				p.t.Columns = append(p.t.Columns, &Column{Name: n})
			}
			p.widen(len(p.t.Columns))
		}
	case FormatRecords:
		if len(p.opts.Names) > 0 {
			p.setRecordColumns(p.opts.Names)
		}
	default:
		return fmt.Errorf("unknown input format %d", p.t.Format)
	}
	return nil
}

func (p *tableReader) setRecordColumns(names []string) {
	p.nValues = len(names)
	for _, n := range names {
		p.t.Columns = append(p.t.Columns, &Column{Name: n})
	}
	p.widen(len(names))
}

// beginRow starts a row: every slot empty.
func (p *tableReader) beginRow() {
	off := p.blkRows * p.width
	p.row = p.blk[off : off+p.width]
	for i := range p.row {
		p.row[i] = math.NaN()
	}
}

// endRow keeps the row read and flushes a full block.
func (p *tableReader) endRow() {
	p.blkRows++
	if (p.blkRows+1)*p.width > len(p.blk) {
		p.flush()
	}
}

// widen makes room for n columns, keeping the row being read.
func (p *tableReader) widen(n int) {
	if n <= p.width {
		return
	}
	p.saved = append(p.saved[:0], p.row...)
	p.flush()
	p.width = n + n/4 + 4
	if need := 2 * p.width; len(p.blk) < need {
		size := offlineBlockValues
		if p.estRows > 0 { // a small input needs no big block
			size = min(size, (p.estRows+2)*p.width)
		}
		p.blk = make([]float64, max(size, need))
	}
	p.row = p.blk[:p.width]
	for i := range p.row {
		p.row[i] = math.NaN()
	}
	copy(p.row, p.saved)
}

// flush moves the block's complete rows into the columns.
func (p *tableReader) flush() {
	n, w, blk := p.blkRows, p.width, p.blk
	for j, c := range p.t.Columns {
		if j >= w {
			break
		}
		// Local slices: appending through c would store the slice header
		// back to the heap on every value.
		switch c.Type {
		case ColumnNumeric:
			vals := c.Values
			for r := j; r < n*w; r += w {
				if v := blk[r]; v == v {
					vals = append(vals, v)
				}
			}
			c.Values = vals
		case ColumnCategorical:
			codes := c.Codes
			for r := j; r < n*w; r += w {
				if v := blk[r]; v == v {
					codes = append(codes, int32(v))
				}
			}
			c.Codes = codes
		}
	}
	p.blkRows = 0
}

// hasValuesArray reports whether line is an object with a top-level
// "values" key holding an array.
func hasValuesArray(tok *json.Tokenizer, line []byte) bool {
	tok.Reset(line)
	afterValuesKey := false
	for tok.Next() {
		if tok.Depth != 1 {
			continue
		}
		switch {
		case tok.IsKey:
			afterValuesKey = string(tok.String()) == "values"
		case tok.Delim == ':':
		case afterValuesKey:
			return tok.Delim == '['
		}
	}
	return false
}

// Grammar states of parseRow.
const (
	grValue        = iota // a value
	grValueOrClose        // a value or ']' (after '[')
	grKeyOrClose          // a key or '}' (after '{')
	grKey                 // a key (after ',' in an object)
	grColon               // ':'
	grCommaOrClose        // ',' or the closing bracket of the container
	grEnd                 // nothing: the line's object is complete
)

// parseRow parses one line into p.row. The tokenizer checks tokens and
// bracket nesting; the states check that keys, colons, commas and values
// alternate as JSON requires.
func (p *tableReader) parseRow(b []byte) error {
	tok := p.tok
	tok.Reset(b)
	stack := p.stack[:0]
	row := p.t.Rows
	records := p.t.Format == FormatRecords
	state := grValue
	keyPos := 0        // position of the current top-level key in the object
	key := int32(-1)   // the current top-level key (objects), -1: ignored
	inValues := false  // the current top-level key is "values" (records)
	valueIdx := 0      // next index within "values"
	sawValues := false // records: this row had its "values"
	for tok.Next() {
		d := tok.Delim
		switch state {
		case grValue, grValueOrClose:
			switch d {
			case 0:
				switch {
				case len(stack) == 1:
					if key >= 0 {
						if err := p.setValue(p.column(key), tok.Value, row); err != nil {
							return err
						}
					}
				case len(stack) == 0:
					return errors.New("a line must hold one JSON object")
				case len(stack) == 2 && inValues && stack[1] == '[':
					if err := p.setRecordValue(valueIdx, tok.Value, row); err != nil {
						return err
					}
					valueIdx++
				}
				state = stateAfterValue(stack)
			case '{', '[':
				if len(stack) == 0 && d != '{' {
					return errors.New("a line must hold one JSON object")
				}
				if len(stack) == 2 && inValues && stack[1] == '[' {
					return fmt.Errorf("values[%d] is not a number or null", valueIdx)
				}
				if len(stack) == 1 && records && inValues && d == '[' {
					if sawValues {
						return errors.New(`duplicate field "values"`)
					}
					sawValues = true
				}
				stack = append(stack, byte(d))
				if d == '{' {
					state = grKeyOrClose
				} else {
					state = grValueOrClose
				}
			case ']':
				if state != grValueOrClose {
					return errors.New("unexpected ']' where a value belongs")
				}
				stack = stack[:len(stack)-1]
				state = stateAfterValue(stack)
			default:
				return fmt.Errorf("unexpected %s where a value belongs", tokenForError(tok))
			}
		case grCommaOrClose:
			top := stack[len(stack)-1]
			switch {
			case d == ',' && top == '{':
				state = grKey
			case d == ',':
				state = grValue
			case (d == '}' && top == '{') || (d == ']' && top == '['):
				if len(stack) == 2 && inValues {
					inValues = false
				}
				stack = stack[:len(stack)-1]
				state = stateAfterValue(stack)
			default:
				return fmt.Errorf("unexpected %s where ',' or a closing bracket belongs", tokenForError(tok))
			}
		case grKeyOrClose, grKey:
			if d == '}' && state == grKeyOrClose {
				stack = stack[:len(stack)-1]
				state = stateAfterValue(stack)
				continue
			}
			if d != 0 || !tok.Value.String() {
				return fmt.Errorf("unexpected %s where an object key belongs", tokenForError(tok))
			}
			if len(stack) == 1 {
				if records {
					inValues = string(tok.Value) == `"values"` ||
						(bytes.IndexByte(tok.Value, '\\') >= 0 && string(tok.String()) == "values")
				} else {
					var err error
					if key, err = p.resolveKey(keyPos, tok.Value, row); err != nil {
						return err
					}
				}
				keyPos++
			}
			state = grColon
		case grColon:
			if d != ':' {
				return fmt.Errorf("unexpected %s where ':' belongs", tokenForError(tok))
			}
			state = grValue
		case grEnd:
			return errors.New("unexpected data after the object")
		}
	}
	p.stack = stack
	if tok.Err != nil {
		return fmt.Errorf("invalid JSON: %w", tok.Err)
	}
	if state != grEnd {
		return errors.New("invalid JSON: unexpected end of line")
	}
	if records {
		if !sawValues {
			return errors.New(`no "values" array`)
		}
		if p.nValues < 0 { // first record and no names: now we know how many
			names := make([]string, valueIdx)
			for i := range names {
				names[i] = "value_" + strconv.Itoa(i)
			}
			p.setRecordColumns(names)
			return p.parseRow(b) // again, storing the values this time
		}
		if valueIdx != p.nValues {
			return fmt.Errorf("%d values, want %d (the number of features)", valueIdx, p.nValues)
		}
	}
	if len(p.hint) > keyPos {
		p.hint = p.hint[:keyPos]
	}
	return nil
}

// stateAfterValue is the state after a complete value inside stack.
func stateAfterValue(stack []byte) int {
	if len(stack) == 0 {
		return grEnd
	}
	return grCommaOrClose
}

// tokenForError describes the tokenizer's current token for an error.
func tokenForError(tok *json.Tokenizer) string {
	if tok.Delim != 0 {
		return strconv.QuoteRune(rune(tok.Delim))
	}
	v := tok.Value
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

// resolveKey returns the index in p.keys of the top-level key whose raw
// token is raw, at position pos of the object, or -1 when the feature is
// not kept. It guesses that rows repeat their keys in the same order and
// spelling, so the common case is one comparison of bytes.
func (p *tableReader) resolveKey(pos int, raw []byte, row int) (int32, error) {
	var k int32 = -1
	if pos < len(p.hint) {
		if h := p.hint[pos]; string(raw) == p.keys[h].raw {
			k = h
		}
	}
	if k < 0 {
		name := raw[1 : len(raw)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			name = p.tok.String()
		}
		k = p.lookupKey(pos, name, raw)
	}
	ki := &p.keys[k]
	if ki.seen == 2*row {
		return -1, fmt.Errorf("duplicate field %q", ki.name)
	}
	ki.seen = 2 * row
	if !ki.kept {
		return -1, nil
	}
	return k, nil
}

// column returns the column index of key k, creating the column at the
// key's first scalar value.
func (p *tableReader) column(k int32) int32 {
	ki := &p.keys[k]
	if ki.col < 0 {
		ki.col = int32(len(p.t.Columns))
		p.t.Columns = append(p.t.Columns, &Column{Name: ki.name})
		p.widen(len(p.t.Columns))
	}
	return ki.col
}

// setRecordValue stores values[i] of a record.
func (p *tableReader) setRecordValue(i int, v json.RawValue, row int) error {
	if !v.Number() && !v.Null() {
		return fmt.Errorf("values[%d] is %s, not a number or null", i, v)
	}
	if p.nValues < 0 || i >= p.nValues {
		// First record without names (stored on the second pass), or too
		// many values (reported with the count at the end of the line).
		return nil
	}
	return p.setValue(int32(i), v, row)
}

// setValue puts the scalar v into slot col of the row.
func (p *tableReader) setValue(col int32, v json.RawValue, row int) error {
	c := p.t.Columns[col]
	switch v[0] {
	case 'n': // null: the slot stays empty
		return nil
	case 't', 'f', '"':
		var s []byte
		switch v[0] {
		case 't':
			s = jsonTrue
		case 'f':
			s = jsonFalse
		default:
			s = v[1 : len(v)-1]
			if bytes.IndexByte(s, '\\') >= 0 {
				s = p.tok.String()
			}
		}
		if !p.storeCategory(c, col, s, row) {
			return fmt.Errorf("feature %q: %w: %s after numbers", c.Name, ErrMixedTypes, v)
		}
		return nil
	}
	f, err := parseJSONNumber(v)
	if err != nil {
		return fmt.Errorf("feature %q: %w", c.Name, err)
	}
	if !p.storeNumber(c, col, f, row) {
		return fmt.Errorf("feature %q: %w: number %s after strings or booleans", c.Name, ErrMixedTypes, v)
	}
	return nil
}

// storeNumber puts f into slot col; false if c is categorical.
func (p *tableReader) storeNumber(c *Column, col int32, f float64, row int) bool {
	if c.Type != ColumnNumeric {
		if c.Type == ColumnCategorical {
			return false
		}
		c.Type = ColumnNumeric
		c.Values = make([]float64, 0, max(p.estRows-row, 16))
	}
	p.row[col] = f
	return true
}

// storeCategory puts the code of category s into slot col; false if c is
// numeric.
func (p *tableReader) storeCategory(c *Column, col int32, s []byte, row int) bool {
	if c.Type != ColumnCategorical {
		if c.Type == ColumnNumeric {
			return false
		}
		c.Type = ColumnCategorical
		c.index = map[string]int32{}
		c.Codes = make([]int32, 0, max(p.estRows-row, 16))
	}
	code, ok := c.index[string(s)]
	if !ok {
		code = int32(len(c.Categories))
		name := string(s)
		c.Categories = append(c.Categories, name)
		c.index[name] = code
	}
	p.row[col] = float64(code)
	return true
}

var (
	jsonTrue  = []byte("true")
	jsonFalse = []byte("false")
	jsonNull  = []byte("null")
)

// exactPow10 are the powers of ten exactly representable as float64.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseJSONNumber converts a JSON number token (validated by the tokenizer)
// to a float64; see scanJSONNumber.
func parseJSONNumber(b []byte) (float64, error) {
	if f, n, ok := scanJSONNumber(b, 0); ok && n == len(b) {
		return f, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse number %s: %w", b, err)
	}
	return f, nil
}

// scanJSONNumber reads the JSON number at b[i:] and returns its value, the
// index after it, and whether it is a valid JSON number in float64 range.
// The value is the nearest float64, exactly strconv.ParseFloat's: short
// decimals take Clinger's fast path (an integer mantissa below 2^53 times
// or divided by an exact power of ten up to 1e22 is one correctly rounded
// operation), the rest go to strconv.ParseFloat.
func scanJSONNumber(b []byte, i int) (float64, int, bool) {
	// Written without branches on the sign and the first digit, which
	// random data makes unpredictable.
	j := i
	var neg uint64
	if j < len(b) && b[j] == '-' {
		neg = 1
	}
	j += int(neg)
	start := j
	mant, j := appendDigits(b, j, 0)
	nd := j - start
	if nd == 0 || (nd > 1 && b[start] == '0') {
		return 0, j, false // no digit, or a leading zero
	}
	exp := 0
	if j < len(b) && b[j] == '.' {
		fs := j + 1
		mant, j = appendDigits(b, fs, mant)
		if j == fs {
			return 0, j, false
		}
		nd += j - fs
		exp = fs - j
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		eneg := false
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			eneg = b[j] == '-'
			j++
		}
		es, e := j, 0
		for ; j < len(b); j++ {
			d := b[j] - '0'
			if d > 9 {
				break
			}
			if e < 100000 {
				e = e*10 + int(d)
			}
		}
		if j == es {
			return 0, j, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if nd <= 19 && mant < 1<<53 && exp >= -22 && exp <= 22 {
		f := float64(mant)
		if exp < 0 {
			f /= exactPow10[-exp]
		} else {
			f *= exactPow10[exp]
		}
		return math.Float64frombits(math.Float64bits(f) | neg<<63), j, true
	}
	f, err := strconv.ParseFloat(string(b[i:j]), 64)
	return f, j, err == nil
}

// fastRow parses the line b if it lies in the subset nearly every
// exporter writes: one object whose fields hold numbers, strings, true,
// false or null (and, in FormatRecords, the "values" array of numbers and
// nulls), with strings of printable ASCII and no escapes, and no field
// repeated. It validates as strictly as JSON requires and returns false for
// any other line, valid or not, having cleared the row's slots: parseRow
// then reads it with the Tokenizer, which alone reports errors.
func (p *tableReader) fastRow(b []byte) bool {
	records := p.t.Format == FormatRecords
	if p.opts.tokenizerOnly || (records && p.nValues < 0) {
		return false
	}
	if p.fastObject(b, records) {
		return true
	}
	p.beginRow()
	return false
}

// fastObject is fastRow's scan. The common field, a known key in its usual
// place with a plain number, takes no function call: a call per field
// costs more than the field (and its stack check stalled on some builds).
func (p *tableReader) fastObject(b []byte, records bool) bool {
	row := p.t.Rows
	stamp := 2*row + 1
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipJSONSpace(b, i+1)
	keyPos, sawValues := 0, false
	for i < len(b) && b[i] != '}' {
		// The key: first the one this position had on the last row, in
		// one comparison of 8 bytes; else scanned.
		k, end := int32(-1), 0
		if !records && keyPos < len(p.hint) && i+8 <= len(b) {
			h := p.hint[keyPos]
			if ki := &p.keys[h]; ki.pmask != 0 && binary.LittleEndian.Uint64(b[i:])&ki.pmask == ki.prefix {
				k, end = h, i+len(ki.raw)-1
			}
		}
		if k < 0 {
			if b[i] != '"' {
				return false
			}
			if end = scanPlainJSONString(b, i+1); end < 0 {
				return false
			}
		}
		raw := b[i : end+1]
		i = skipJSONSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipJSONSpace(b, i+1)
		if i >= len(b) {
			return false
		}
		var ok bool
		switch {
		case records && string(raw) == `"values"`:
			if sawValues || b[i] != '[' {
				return false
			}
			sawValues = true
			i, ok = p.fastValues(b, i+1, row)
		case records:
			i, ok = skipJSONScalar(b, i)
		default:
			if k < 0 && keyPos < len(p.hint) {
				if h := p.hint[keyPos]; sameKeyBytes(raw, p.keys[h].raw) {
					k = h
				}
			}
			if k < 0 {
				k = p.lookupKey(keyPos, raw[1:len(raw)-1], raw)
			}
			ki := &p.keys[k]
			if ki.seen == stamp {
				return false // a repeated field: the Tokenizer path says so
			}
			ki.seen = stamp
			switch {
			case !ki.kept:
				i, ok = skipJSONScalar(b, i)
			case b[i] == '{' || b[i] == '[':
				return false // not a scalar: no column for it here
			default:
				col := ki.col
				if ki.typ != ColumnNumeric || (b[i] != '-' && b[i]-'0' > 9) {
					if col < 0 {
						col = p.column(k)
						ki = &p.keys[k]
					}
					c := p.t.Columns[col]
					i, ok = p.fastValue(c, col, b, i, row)
					ki.typ = c.Type
					break
				}
				// A plain decimal of at most 15 digits, inline: as exact as
				// scanJSONNumber's fast path (the mantissa is below 2^53, so
				// one division rounds correctly), without branches on the
				// sign. Anything else goes to scanJSONNumber.
				j := i
				var neg uint64
				if b[j] == '-' {
					neg = 1
				}
				j += int(neg)
				start := j
				mant, j := appendDigits(b, j, 0)
				intEnd, frac := j, 0
				if j < len(b) && b[j] == '.' {
					mant, j = appendDigits(b, j+1, mant)
					frac = j - intEnd - 1
				}
				if n := intEnd - start; n > 0 && n+frac <= 15 && (n == 1 || b[start] != '0') &&
					(frac > 0 || j == intEnd) && (j == len(b) || b[j]|0x20 != 'e') {
					p.row[col] = float64(mant) / exactPow10[frac] * signOf[neg]
					i, ok = j, true
					break
				}
				var f float64
				f, i, ok = scanJSONNumber(b, i)
				p.row[col] = f
			}
		}
		if !ok {
			return false
		}
		keyPos++
		i = skipJSONSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			break // '}' or an error, checked below
		}
		i = skipJSONSpace(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return false
		}
	}
	if i >= len(b) || b[i] != '}' || skipJSONSpace(b, i+1) != len(b) || (records && !sawValues) {
		return false
	}
	if len(p.hint) > keyPos {
		p.hint = p.hint[:keyPos]
	}
	return true
}

// signOf multiplies a magnitude by its sign, exactly (-0 included).
var signOf = [2]float64{1, -1}

// sameKeyBytes is string(a) == b without the call to the runtime's memequal,
// for short keys.
func sameKeyBytes(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// appendDigits appends the decimal digits at b[j:] to mant and returns
// the index after them.
func appendDigits(b []byte, j int, mant uint64) (uint64, int) {
	for ; j < len(b); j++ {
		d := b[j] - '0'
		if d > 9 {
			break
		}
		mant = mant*10 + uint64(d)
	}
	return mant, j
}

// lookupKey returns the index in p.keys of the top-level key named name
// (unescaped; raw is its token as written), adding it if new, and makes it
// the guess for position pos.
func (p *tableReader) lookupKey(pos int, name, raw []byte) int32 {
	k, ok := p.byName[string(name)]
	if !ok {
		k = int32(len(p.keys))
		p.keys = append(p.keys, newKeyInfo(string(name), string(raw), !p.keep))
		p.byName[p.keys[k].name] = k
	}
	if pos < len(p.hint) {
		p.hint[pos] = k
	} else {
		p.hint = append(p.hint, k)
	}
	return k
}

// fastValue stores the scalar at b[i:] in slot col and returns the index
// after it; false for anything but a plain scalar of the column's type.
func (p *tableReader) fastValue(c *Column, col int32, b []byte, i, row int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end := scanPlainJSONString(b, i+1)
		return end + 1, end >= 0 && p.storeCategory(c, col, b[i+1:end], row)
	case 't':
		return i + 4, bytes.HasPrefix(b[i:], jsonTrue) && p.storeCategory(c, col, jsonTrue, row)
	case 'f':
		return i + 5, bytes.HasPrefix(b[i:], jsonFalse) && p.storeCategory(c, col, jsonFalse, row)
	case 'n':
		return i + 4, bytes.HasPrefix(b[i:], jsonNull)
	}
	f, j, ok := scanJSONNumber(b, i)
	return j, ok && p.storeNumber(c, col, f, row)
}

// fastValues reads the inside of a record's "values" array from b[i:]
// (after '[') and returns the index after its ']'.
func (p *tableReader) fastValues(b []byte, i, row int) (int, bool) {
	i = skipJSONSpace(b, i)
	n := 0
	if i < len(b) && b[i] == ']' {
		return i + 1, p.nValues == 0
	}
	for {
		if n >= p.nValues || i >= len(b) {
			return i, false
		}
		if b[i] == 'n' {
			if !bytes.HasPrefix(b[i:], jsonNull) {
				return i, false
			}
			i += 4
		} else {
			f, j, ok := scanJSONNumber(b, i)
			if !ok || !p.storeNumber(p.t.Columns[n], int32(n), f, row) {
				return i, false
			}
			i = j
		}
		n++
		i = skipJSONSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipJSONSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' && n == p.nValues {
			return i + 1, true
		}
		return i, false
	}
}

// skipJSONScalar validates the scalar at b[i:] and returns the index after it.
func skipJSONScalar(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end := scanPlainJSONString(b, i+1)
		return end + 1, end >= 0
	case 't':
		return i + 4, bytes.HasPrefix(b[i:], jsonTrue)
	case 'f':
		return i + 5, bytes.HasPrefix(b[i:], jsonFalse)
	case 'n':
		return i + 4, bytes.HasPrefix(b[i:], jsonNull)
	}
	_, j, ok := scanJSONNumber(b, i)
	return j, ok
}

// scanPlainJSONString returns the index of the quote closing the string whose
// content starts at b[i], or -1 if the string has an escape, a byte outside
// printable ASCII, or no end: those are the Tokenizer's.
func scanPlainJSONString(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i
		case c < 0x20 || c >= 0x7f || c == '\\':
			return -1
		}
	}
	return -1
}

// skipJSONSpace returns the index of the first byte at or after i that is not
// JSON whitespace (a line holds no '\n').
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// finish flushes the last block, checks the features asked for and counts
// the nulls.
func (p *tableReader) finish() (*Table, error) {
	p.flush()
	t := p.t
	if t.Format == FormatAuto {
		t.Format = p.opts.Format
	}
	var missing []string
	for _, k := range p.keys {
		if k.kept && k.seen < 0 {
			missing = append(missing, k.name)
		}
	}
	if len(missing) > 0 && t.Rows > 0 {
		return nil, fmt.Errorf("cannot select features: %s not in the input", strings.Join(missing, ", "))
	}
	for _, c := range t.Columns {
		c.Nulls = t.Rows - c.Count()
	}
	return t, nil
}

// Method is a drift statistic CompareTables can run on a feature.
type Method string

// Methods, named as Evidently names its stattests.
const (
	// MethodKS is the two-sample Kolmogorov–Smirnov test (KS); drift when
	// p < 0.05. Numeric features only.
	MethodKS Method = "ks"
	// MethodWasserstein is the Wasserstein distance normed by the
	// reference's standard deviation (NormalizedWasserstein); drift when
	// >= 0.1. Numeric features only.
	MethodWasserstein Method = "wasserstein"
	// MethodPSI is the population stability index (PSI) of the reference
	// deciles (internal/profile bins, the online monitor's) or of the
	// categories; drift when >= 0.1.
	MethodPSI Method = "psi"
	// MethodJensenShannon is the Jensen–Shannon distance (natural log,
	// JensenShannon) of the category shares, or of the shares of the
	// reference deciles for a numeric feature; drift when >= 0.1.
	MethodJensenShannon Method = "jensenshannon"
	// MethodChiSquare is Pearson's chi-square test of the current category
	// counts against the reference (ChiSquare); drift when p < 0.05. On a
	// numeric feature every distinct value is a category.
	MethodChiSquare Method = "chisquare"
	// MethodZ is the two-proportion z-test Evidently uses for features with
	// at most two values (ZTest); drift when p < 0.05.
	MethodZ Method = "z"
)

// Methods lists every Method.
var Methods = []Method{MethodKS, MethodWasserstein, MethodPSI, MethodJensenShannon, MethodChiSquare, MethodZ}

// DefaultThreshold returns the drift threshold of m (Evidently's default):
// the p-value below which a test finds drift, or the distance at or above
// which a distance does.
func (m Method) DefaultThreshold() float64 {
	if m.HasPValue() {
		return 0.05
	}
	return 0.1
}

// HasPValue reports whether m is a test with a p-value (drift when
// p < threshold) rather than a distance (drift when statistic >= threshold).
func (m Method) HasPValue() bool {
	return m == MethodKS || m == MethodChiSquare || m == MethodZ
}

// ParseMethods parses per-feature overrides "name=method,name=method".
func ParseMethods(spec string) (map[string]Method, error) {
	out := map[string]Method{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, m, ok := strings.Cut(item, "=")
		name, m = strings.TrimSpace(name), strings.TrimSpace(m)
		if !ok || name == "" {
			return nil, fmt.Errorf("cannot parse method override %q: want feature=method", item)
		}
		if !slices.Contains(Methods, Method(m)) {
			return nil, fmt.Errorf("cannot parse method override %q: unknown method %q (want one of %v)", item, m, Methods)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("cannot parse method overrides: feature %q given twice", name)
		}
		out[name] = Method(m)
	}
	return out, nil
}

// Evidently's switches for the default method.
const (
	// SmallSampleRows: a feature with at most this many non-null reference
	// values is tested (KS, chi-square, z), above it measured by a distance
	// (Wasserstein, Jensen–Shannon).
	SmallSampleRows = 1000
	// CategoricalMaxUnique: a numeric feature with at most this many
	// distinct values in reference and current together is compared as
	// categorical.
	CategoricalMaxUnique = 5
)

// OfflineConfig configures CompareTables.
type OfflineConfig struct {
	// Methods overrides the default method per feature name.
	Methods map[string]Method `yaml:"methods"`
	// DriftShare: the dataset drifts when at least this share of the
	// compared features drift. Default 0.5 (Evidently's drift_share).
	DriftShare float64 `yaml:"drift_share"`
	// Workers compute features in parallel. Default runtime.GOMAXPROCS(0).
	Workers int `yaml:"workers"`
}

func (c *OfflineConfig) setDefaults() {
	if c.DriftShare == 0 {
		c.DriftShare = 0.5
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
}

// Validate reports a configuration CompareTables cannot use.
func (c *OfflineConfig) Validate() error {
	if !(c.DriftShare > 0 && c.DriftShare <= 1) {
		return fmt.Errorf("drift_share must be in (0, 1], got %g", c.DriftShare)
	}
	for name, m := range c.Methods {
		if !slices.Contains(Methods, m) {
			return fmt.Errorf("feature %q: unknown method %q", name, m)
		}
	}
	return nil
}

// FeatureDrift is the verdict on one feature.
type FeatureDrift struct {
	Name   string
	Type   ColumnType
	Method Method // empty when the feature had no values on one side
	// Statistic is the test statistic (KS D, chi-square, z) or the
	// distance; NaN when undefined.
	Statistic float64
	// PValue is the test's p-value; NaN for distances.
	PValue float64
	// Threshold is the method's default threshold.
	Threshold float64
	Drift     bool
	// ReferenceCount and CurrentCount are the non-null values compared;
	// ReferenceNulls and CurrentNulls the rows skipped as null or absent.
	ReferenceCount, CurrentCount int
	ReferenceNulls, CurrentNulls int
}

// NoData reports whether the feature had no values on one side, so no
// statistic: it is not counted in the dataset's share.
func (f *FeatureDrift) NoData() bool { return f.ReferenceCount == 0 || f.CurrentCount == 0 }

// DriftReport is CompareTables' result.
type DriftReport struct {
	RowsReference, RowsCurrent int
	Features                   []FeatureDrift // in the reference's column order
	// DriftedFeatures of the ComparedFeatures (those with values on both
	// sides) drifted; ShareDrifted is their ratio.
	DriftedFeatures, ComparedFeatures int
	ShareDrifted                      float64
	DriftShare                        float64 // the threshold applied
	DatasetDrift                      bool    // ShareDrifted >= DriftShare
	// Seconds is the wall time the caller measured (reading included); 0
	// when not set.
	Seconds float64
}

// CompareTables compares every feature of cur with the same feature of ref
// and returns the verdicts. Both must hold the same features, each numeric
// or categorical on both sides (a side with only nulls takes the other's
// type). The method is Evidently's default (see the top of this file)
// unless cfg.Methods overrides it; ks and wasserstein need a numeric
// feature. Features are computed on cfg.Workers goroutines; CompareTables
// sorts the Values of numeric columns of both tables in place.
func CompareTables(ref, cur *Table, cfg OfflineConfig) (*DriftReport, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot compare: %w", err)
	}
	var refOnly, curOnly []string
	curCols := make([]*Column, len(ref.Columns))
	for i, c := range ref.Columns {
		if curCols[i] = cur.Column(c.Name); curCols[i] == nil {
			refOnly = append(refOnly, c.Name)
		}
	}
	for _, c := range cur.Columns {
		if ref.Column(c.Name) == nil {
			curOnly = append(curOnly, c.Name)
		}
	}
	if len(refOnly) > 0 || len(curOnly) > 0 {
		return nil, fmt.Errorf("cannot compare: the files have different features: reference only [%s], current only [%s]",
			strings.Join(refOnly, " "), strings.Join(curOnly, " "))
	}
	for name := range cfg.Methods {
		if ref.Column(name) == nil {
			return nil, fmt.Errorf("cannot compare: method override for unknown feature %q", name)
		}
	}
	jobs := make([]offlineJob, len(ref.Columns))
	for i, rc := range ref.Columns {
		cc := curCols[i]
		typ := rc.Type
		if typ == ColumnUnknown {
			typ = cc.Type
		}
		if cc.Type != ColumnUnknown && cc.Type != typ {
			return nil, fmt.Errorf("cannot compare feature %q: %s in the reference, %s in the current", rc.Name, rc.Type, cc.Type)
		}
		m, forced := cfg.Methods[rc.Name]
		if forced && typ == ColumnCategorical && (m == MethodKS || m == MethodWasserstein) {
			return nil, fmt.Errorf("cannot compare feature %q with %s: it is categorical", rc.Name, m)
		}
		jobs[i] = offlineJob{ref: rc, cur: cc, typ: typ, method: m}
	}

	out := make([]FeatureDrift, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cfg.Workers, max(len(jobs), 1)) {
		wg.Go(func() {
			var w offlineWorker
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				out[i] = w.compare(&jobs[i])
			}
		})
	}
	wg.Wait()

	rep := &DriftReport{RowsReference: ref.Rows, RowsCurrent: cur.Rows, Features: out, DriftShare: cfg.DriftShare}
	for i := range out {
		if out[i].NoData() {
			continue
		}
		rep.ComparedFeatures++
		if out[i].Drift {
			rep.DriftedFeatures++
		}
	}
	if rep.ComparedFeatures > 0 {
		rep.ShareDrifted = float64(rep.DriftedFeatures) / float64(rep.ComparedFeatures)
		rep.DatasetDrift = rep.ShareDrifted >= cfg.DriftShare
	}
	return rep, nil
}

// offlineJob is one feature to compare.
type offlineJob struct {
	ref, cur *Column
	typ      ColumnType
	method   Method // "" for the default
}

// offlineWorker holds one goroutine's buffers.
type offlineWorker struct {
	ks     KSScratch
	sorter floatSorter
	refCnt []float64
	curCnt []float64
}

// compare computes one feature's verdict.
func (w *offlineWorker) compare(j *offlineJob) FeatureDrift {
	f := FeatureDrift{
		Name: j.ref.Name, Type: j.typ, Statistic: math.NaN(), PValue: math.NaN(),
		ReferenceCount: j.ref.Count(), CurrentCount: j.cur.Count(),
		ReferenceNulls: j.ref.Nulls, CurrentNulls: j.cur.Nulls,
	}
	if f.NoData() {
		return f
	}
	if j.typ == ColumnNumeric {
		w.numeric(j, &f)
	} else {
		w.categorical(j, &f)
	}
	f.Threshold = f.Method.DefaultThreshold()
	switch {
	case math.IsNaN(f.Statistic) && math.IsNaN(f.PValue):
	case f.Method.HasPValue():
		f.Drift = f.PValue < f.Threshold
	default:
		f.Drift = f.Statistic >= f.Threshold
	}
	return f
}

// numeric compares a numeric feature.
func (w *offlineWorker) numeric(j *offlineJob, f *FeatureDrift) {
	ref, cur := j.ref.Values, j.cur.Values
	// The std in file order, so the result is NormalizedWasserstein's to
	// the bit.
	refStd := populationStdDev(ref)
	w.sorter.sort(ref)
	w.sorter.sort(cur)

	// Distinct values of both together, counted up to one past the limit.
	few := countDistinctUnion(ref, cur, CategoricalMaxUnique+1) <= CategoricalMaxUnique
	m := j.method
	if m == "" {
		switch {
		case len(ref) <= SmallSampleRows && !few:
			m = MethodKS
		case len(ref) <= SmallSampleRows:
			m = MethodChiSquare
			if countDistinctUnion(ref, cur, 3) <= 2 {
				m = MethodZ
			}
		case !few:
			m = MethodWasserstein
		default:
			m = MethodJensenShannon
		}
	}
	f.Method = m
	switch m {
	case MethodKS:
		f.Statistic, f.PValue = w.ks.KSSorted(ref, cur)
	case MethodWasserstein:
		f.Statistic = WassersteinSorted(ref, cur) / max(refStd, WassersteinNormFloor)
	case MethodChiSquare, MethodZ:
		w.valueCounts(ref, cur)
		f.Statistic, f.PValue = w.test(m)
	case MethodJensenShannon, MethodPSI:
		if few {
			w.valueCounts(ref, cur)
		} else {
			w.decileCounts(j.ref.Name, ref, cur)
		}
		f.Statistic = w.distance(m)
	}
}

// categorical compares a categorical feature.
func (w *offlineWorker) categorical(j *offlineJob, f *FeatureDrift) {
	rc, cc := j.ref, j.cur
	// The union of categories: the reference's codes, then the current's
	// new ones.
	curMap := make([]int32, len(cc.Categories))
	names := slices.Clone(rc.Categories)
	for i, name := range cc.Categories {
		code, ok := rc.index[name]
		if !ok {
			code = int32(len(names))
			names = append(names, name)
		}
		curMap[i] = code
	}
	w.refCnt = zeroedFloats(w.refCnt, len(names))
	w.curCnt = zeroedFloats(w.curCnt, len(names))
	for _, c := range rc.Codes {
		w.refCnt[c]++
	}
	for _, c := range cc.Codes {
		w.curCnt[curMap[c]]++
	}
	m := j.method
	if m == "" {
		switch {
		case len(rc.Codes) > SmallSampleRows:
			m = MethodJensenShannon
		case len(names) > 2:
			m = MethodChiSquare
		default:
			m = MethodZ
		}
	}
	f.Method = m
	if m == MethodZ {
		// Evidently's z-test takes the share of everything but the
		// smallest category: put it first.
		first := 0
		for i, n := range names {
			if n < names[first] {
				first = i
			}
		}
		w.refCnt[0], w.refCnt[first] = w.refCnt[first], w.refCnt[0]
		w.curCnt[0], w.curCnt[first] = w.curCnt[first], w.curCnt[0]
	}
	switch m {
	case MethodChiSquare, MethodZ:
		f.Statistic, f.PValue = w.test(m)
	default:
		f.Statistic = w.distance(m)
	}
}

// zeroedFloats returns b with n zeroed entries.
func zeroedFloats(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// valueCounts sets w.refCnt and w.curCnt to the counts of every distinct
// value of the sorted ref and cur, in ascending order of value.
func (w *offlineWorker) valueCounts(ref, cur []float64) {
	w.refCnt, w.curCnt = w.refCnt[:0], w.curCnt[:0]
	i, j := 0, 0
	for i < len(ref) || j < len(cur) {
		x := nextValue(ref, cur, i, j)
		i0, j0 := i, j
		for i < len(ref) && ref[i] == x {
			i++
		}
		for j < len(cur) && cur[j] == x {
			j++
		}
		w.refCnt = append(w.refCnt, float64(i-i0))
		w.curCnt = append(w.curCnt, float64(j-j0))
	}
}

// decileCounts sets w.refCnt and w.curCnt to the counts of the sorted ref
// and cur in the bins internal/profile builds from the reference (its
// deciles, or one bin per value for a column with at most 10 distinct
// values): the bins of the online monitor's reference profiles.
func (w *offlineWorker) decileCounts(name string, ref, cur []float64) {
	edges := profile.BuildBins(name, ref, profile.DefaultBins).Edges
	w.refCnt = binSorted(w.refCnt, edges, ref)
	w.curCnt = binSorted(w.curCnt, edges, cur)
}

// binSorted returns the counts of the sorted x in the bins of edges
// (profile.Bin's bins), in buf.
func binSorted(buf, edges, x []float64) []float64 {
	buf = zeroedFloats(buf, len(edges)+1)
	b := 0
	for _, v := range x {
		for b < len(edges) && v > edges[b] {
			b++
		}
		buf[b]++
	}
	return buf
}

// test runs chi-square or the z-test on w.refCnt and w.curCnt.
func (w *offlineWorker) test(m Method) (float64, float64) {
	if m == MethodZ {
		return zTestCounts(w.refCnt, w.curCnt)
	}
	return ChiSquare(w.refCnt, w.curCnt)
}

// distance runs Jensen–Shannon or PSI on the counts w.refCnt and w.curCnt
// (PSI on the shares, count/total, as profile.BuildOne computes them).
func (w *offlineWorker) distance(m Method) float64 {
	if m == MethodJensenShannon {
		return JensenShannon(w.refCnt, w.curCnt)
	}
	toShares(w.refCnt)
	toShares(w.curCnt)
	return PSI(w.refCnt, w.curCnt)
}

// toShares divides x by its sum.
func toShares(x []float64) {
	var s float64
	for _, v := range x {
		s += v
	}
	if s > 0 {
		for i := range x {
			x[i] /= s
		}
	}
}

// zTestCounts is ZTest of the counts of categories: the proportion is the
// share of all but the first category.
func zTestCounts(ref, cur []float64) (float64, float64) {
	var n1, n2 float64
	for i := range ref {
		n1 += ref[i]
		n2 += cur[i]
	}
	return ZTest(n1-ref[0], n1, n2-cur[0], n2)
}

// ZTest is the two-proportion z-test of Evidently's "z" stattest
// (proportions_diff_z_stat_ind, two-sided): k1 of n1 reference values and k2
// of n2 current values are "ones",
//
//	p = (k1+k2)/(n1+n2),   z = (k1/n1 - k2/n2) / √(p(1-p)(1/n1 + 1/n2)),
//
// and the p-value is 2(1 - Φ(|z|)), computed as erfc(|z|/√2) so that small
// p-values keep their digits. When every value is the same on both sides
// (p(1-p) = 0) z is 0 and the p-value 1, as Evidently returns it. NaN, NaN
// when n1 or n2 is 0.
func ZTest(k1, n1, k2, n2 float64) (z, pValue float64) {
	if !(n1 > 0 && n2 > 0) {
		return math.NaN(), math.NaN()
	}
	p1, p2 := k1/n1, k2/n2
	p := (p1*n1 + p2*n2) / (n1 + n2)
	v := p * (1 - p) * (1/n1 + 1/n2)
	if !(v > 0) {
		return 0, 1
	}
	z = (p1 - p2) / math.Sqrt(v)
	return z, math.Erfc(math.Abs(z) / math.Sqrt2)
}

// countDistinctUnion returns the number of distinct values in the sorted
// a and b together, stopping at limit.
func countDistinctUnion(a, b []float64, limit int) int {
	n, i, j := 0, 0, 0
	for (i < len(a) || j < len(b)) && n < limit {
		var x float64
		switch {
		case i == len(a):
			x = b[j]
		case j == len(b):
			x = a[i]
		default:
			x = min(a[i], b[j])
		}
		n++
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
	}
	return n
}

// Radix sort parameters: keys are split into a top digit of 11 bits (sign
// and exponent) and five low digits of 11, 11, 11, 11 and 9 bits.
const (
	radixBits = 11
	radixSize = 1 << radixBits
	radixMask = radixSize - 1
	radixLow  = 5
	// radixLastMask selects the last low digit: the 9 bits below the top.
	radixLastMask = 1<<(64-radixBits-(radixLow-1)*radixBits) - 1
	// radixMinLen: shorter slices, and shorter buckets, go to slices.Sort.
	radixMinLen = 1024
)

// floatSorter sorts float64 slices by a radix sort of their bits mapped to
// order-preserving unsigned keys, keeping its buffers between calls: one
// most-significant pass on sign and exponent scatters the keys into
// buckets, then each bucket, small enough to stay in cache for data
// spread over a few binades, is sorted by least-significant passes on the
// remaining 53 bits (passes where every key has the same digit are
// skipped). A million values take ~12 ms instead of ~110 ms with
// slices.Sort, or ~27 ms with plain LSD passes over the whole slice. NaN
// is not expected (JSON has none).
type floatSorter struct {
	a, b []uint64
	hist [radixLow][radixSize]int
}

// floatSortKey maps f to an unsigned key in the same order (-0 before +0):
// negative numbers get every bit flipped, positive ones the sign bit.
func floatSortKey(f float64) uint64 {
	u := math.Float64bits(f)
	return u ^ (uint64(int64(u)>>63) | 1<<63)
}

// sortKeyFloat inverts floatSortKey.
func sortKeyFloat(u uint64) float64 {
	return math.Float64frombits(u ^ ((u >> 63) - 1 | 1<<63))
}

// sort sorts x in ascending order.
func (s *floatSorter) sort(x []float64) {
	n := len(x)
	if n < radixMinLen {
		slices.Sort(x)
		return
	}
	if cap(s.a) < n {
		s.a, s.b = make([]uint64, n), make([]uint64, n)
	}
	a, b := s.a[:n], s.b[:n]
	var top [radixSize + 1]int
	for _, f := range x {
		top[floatSortKey(f)>>(64-radixBits)]++
	}
	sum := 0
	for d, c := range top[:radixSize] {
		top[d] = sum
		sum += c
	}
	top[radixSize] = n
	var next [radixSize]int
	copy(next[:], top[:radixSize])
	for _, f := range x { // keys made again rather than stored: one pass less
		u := floatSortKey(f)
		d := u >> (64 - radixBits)
		b[next[d]] = u
		next[d]++
	}
	for d := range radixSize {
		if lo, hi := top[d], top[d+1]; hi-lo > 1 {
			s.sortLow(b[lo:hi], a[lo:hi])
		}
	}
	for i, u := range b {
		x[i] = sortKeyFloat(u)
	}
}

// sortLow sorts the keys of keys, which share their top digit, by their low
// 53 bits, using scratch (as long) as the other buffer; the result is in
// keys.
func (s *floatSorter) sortLow(keys, scratch []uint64) {
	m := len(keys)
	if m < radixMinLen {
		slices.Sort(keys)
		return
	}
	h := &s.hist
	for p := range h {
		clear(h[p][:])
	}
	for _, u := range keys {
		h[0][u&radixMask]++
		h[1][u>>radixBits&radixMask]++
		h[2][u>>(2*radixBits)&radixMask]++
		h[3][u>>(3*radixBits)&radixMask]++
		h[4][u>>(4*radixBits)&radixLastMask]++
	}
	src, dst := keys, scratch
	for p := range radixLow {
		shift := uint(p * radixBits)
		mask := uint64(radixMask)
		if p == radixLow-1 {
			mask = radixLastMask
		}
		if h[p][src[0]>>shift&mask] == m {
			continue // every key has this digit
		}
		var off [radixSize]int
		sum := 0
		for d, c := range h[p] {
			off[d] = sum
			sum += c
		}
		for _, u := range src {
			d := u >> shift & mask
			dst[off[d]] = u
			off[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// MarshalJSON writes the report as `driftline drift --json` prints it:
//
//	{"rows_reference":…,"rows_current":…,"features":[{"name","type","method",
//	 "statistic","p_value","threshold","drift","reference_count",
//	 "current_count","reference_nulls","current_nulls"}],
//	 "drifted_features":n,"compared_features":n,"share_drifted":x,
//	 "drift_share":0.5,"dataset_drift":bool,"seconds":t}
//
// with null for a statistic or p-value that is undefined (NaN) or infinite
// (chi-square when the current has a category the reference lacks: its
// p-value is 0), and for the method and threshold of a feature with no
// values on one side.
func (r *DriftReport) MarshalJSON() ([]byte, error) {
	type feature struct {
		Name           string   `json:"name"`
		Type           string   `json:"type"`
		Method         *Method  `json:"method"`
		Statistic      *float64 `json:"statistic"`
		PValue         *float64 `json:"p_value"`
		Threshold      *float64 `json:"threshold"`
		Drift          bool     `json:"drift"`
		ReferenceCount int      `json:"reference_count"`
		CurrentCount   int      `json:"current_count"`
		ReferenceNulls int      `json:"reference_nulls"`
		CurrentNulls   int      `json:"current_nulls"`
	}
	type report struct {
		RowsReference    int       `json:"rows_reference"`
		RowsCurrent      int       `json:"rows_current"`
		Features         []feature `json:"features"`
		DriftedFeatures  int       `json:"drifted_features"`
		ComparedFeatures int       `json:"compared_features"`
		ShareDrifted     float64   `json:"share_drifted"`
		DriftShare       float64   `json:"drift_share"`
		DatasetDrift     bool      `json:"dataset_drift"`
		Seconds          float64   `json:"seconds"`
	}
	num := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	out := report{
		RowsReference: r.RowsReference, RowsCurrent: r.RowsCurrent,
		Features:        make([]feature, len(r.Features)),
		DriftedFeatures: r.DriftedFeatures, ComparedFeatures: r.ComparedFeatures,
		ShareDrifted: r.ShareDrifted, DriftShare: r.DriftShare, DatasetDrift: r.DatasetDrift,
		Seconds: r.Seconds,
	}
	for i, f := range r.Features {
		o := feature{
			Name: f.Name, Type: f.Type.String(),
			Statistic: num(f.Statistic), PValue: num(f.PValue), Drift: f.Drift,
			ReferenceCount: f.ReferenceCount, CurrentCount: f.CurrentCount,
			ReferenceNulls: f.ReferenceNulls, CurrentNulls: f.CurrentNulls,
		}
		if f.Method != "" {
			m := f.Method
			o.Method = &m
			o.Threshold = num(f.Threshold)
		}
		out.Features[i] = o
	}
	return json.Marshal(out)
}
