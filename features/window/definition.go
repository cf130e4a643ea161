package window

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/driftline/driftline/schemas"
)

// Entity is what a feature's state is keyed by.
type Entity uint8

// Entities. A user's state is keyed by user_id, a session's by session_id.
const (
	User Entity = iota
	Session
	numEntities
)

var entityNames = [numEntities]string{"user", "session"}

func (e Entity) String() string {
	if e < numEntities {
		return entityNames[e]
	}
	return fmt.Sprintf("entity(%d)", uint8(e))
}

// Aggregation is how a feature folds the values of the events in a window.
type Aggregation uint8

// Aggregations.
const (
	Count          Aggregation = iota // number of matching events
	Sum                               // sum of the value
	Mean                              // mean of the value
	Min                               // smallest value
	Max                               // largest value
	DistinctCount                     // number of distinct values of a string field
	Last                              // value of the latest event in event time
	First                             // value of the earliest event in event time
	TimeSinceLast                     // read time minus the latest event time, in Unit
	TimeSinceFirst                    // read time minus the earliest event time, in Unit
	numAggregations
)

var aggregationNames = [numAggregations]string{
	"count", "sum", "mean", "min", "max", "distinct_count", "last", "first", "time_since_last", "time_since_first",
}

func (a Aggregation) String() string {
	if a < numAggregations {
		return aggregationNames[a]
	}
	return fmt.Sprintf("aggregation(%d)", uint8(a))
}

// WindowKind is the shape of a feature's window.
type WindowKind uint8

// Window kinds.
const (
	Lifetime     WindowKind = iota // every event of the key since it was created
	Tumbling                       // [k*size, (k+1)*size)
	Hopping                        // [k*hop, k*hop+size): overlapping when hop < size
	SessionGap                     // events closer than gap to each other, [first, last+gap)
	TriggerEvent                   // the event the vector is read at, alone
	numWindowKinds
)

var windowKindNames = [numWindowKinds]string{"lifetime", "tumbling", "hopping", "session", "event"}

func (k WindowKind) String() string {
	if k < numWindowKinds {
		return windowKindNames[k]
	}
	return fmt.Sprintf("window(%d)", uint8(k))
}

// eventTypes are the storefront event types, in a fixed order: a feature's
// source types are a bit set over it.
var eventTypes = [...]string{
	schemas.PageView, schemas.ProductView, schemas.Search,
	schemas.AddToCart, schemas.RemoveFromCart, schemas.CheckoutStart,
	schemas.Purchase, schemas.Refund, schemas.Chargeback,
}

// typeBit returns the bit of an event type, 0 for an unknown one.
func typeBit(t string) uint16 {
	// A switch, not a map: this runs per event and per feature.
	switch t {
	case schemas.PageView:
		return 1 << 0
	case schemas.ProductView:
		return 1 << 1
	case schemas.Search:
		return 1 << 2
	case schemas.AddToCart:
		return 1 << 3
	case schemas.RemoveFromCart:
		return 1 << 4
	case schemas.CheckoutStart:
		return 1 << 5
	case schemas.Purchase:
		return 1 << 6
	case schemas.Refund:
		return 1 << 7
	case schemas.Chargeback:
		return 1 << 8
	}
	return 0
}

// Value selectors: the fixed set of things a feature can aggregate.
type selector uint8

const (
	selOne       selector = iota // 1 for every event (count)
	selPrice                     // price
	selQuantity                  // quantity
	selLineTotal                 // quantity * price
	selCartDelta                 // quantity * price, negative for remove_from_cart
	selCartValue                 // cart_value
	selItems                     // items
	selAmount                    // amount
	selIndicator                 // 1 when a string field equals one of the values, else 0
	selString                    // a string field (distinct_count)
)

// numericSelectors names the numeric selectors and the event types that
// must carry their fields (schemas' required fields).
var numericSelectors = map[string]struct {
	sel     selector
	carried []string
}{
	"one":        {selOne, eventTypes[:]},
	"price":      {selPrice, []string{schemas.ProductView, schemas.AddToCart, schemas.RemoveFromCart}},
	"quantity":   {selQuantity, []string{schemas.AddToCart, schemas.RemoveFromCart}},
	"line_total": {selLineTotal, []string{schemas.AddToCart, schemas.RemoveFromCart}},
	"cart_delta": {selCartDelta, []string{schemas.AddToCart, schemas.RemoveFromCart}},
	"cart_value": {selCartValue, []string{schemas.CheckoutStart}},
	"items":      {selItems, []string{schemas.CheckoutStart}},
	"amount":     {selAmount, []string{schemas.Purchase, schemas.Refund, schemas.Chargeback}},
}

// stringField is a string field of an event that filters, indicators and
// distinct_count can read.
type stringField uint8

const (
	fieldUserID stringField = iota
	fieldSessionID
	fieldDevice
	fieldCountry
	fieldReferrer
	fieldPage
	fieldQuery
	fieldCategory
	fieldProductID
	fieldOrderID
	fieldCurrency
	numStringFields
)

var stringFieldNames = [numStringFields]string{
	"user_id", "session_id", "device", "country", "referrer", "page", "query", "category", "product_id", "order_id", "currency",
}

func stringFieldOf(name string) (stringField, bool) {
	i := slices.Index(stringFieldNames[:], name)
	return stringField(i), i >= 0
}

func (f stringField) of(e *schemas.Event) string {
	switch f {
	case fieldUserID:
		return e.UserID
	case fieldSessionID:
		return e.SessionID
	case fieldDevice:
		return e.Device
	case fieldCountry:
		return e.Country
	case fieldReferrer:
		return e.Referrer
	case fieldPage:
		return e.Page
	case fieldQuery:
		return e.Query
	case fieldCategory:
		return e.Category
	case fieldProductID:
		return e.ProductID
	case fieldOrderID:
		return e.OrderID
	case fieldCurrency:
		return e.Currency
	}
	return ""
}

// Strings is one string or a list of them in YAML.
type Strings []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = Strings{n.Value}
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// Value is what a feature aggregates: the name of a selector (one, price,
// quantity, line_total, cart_delta, cart_value, items, amount, or a string
// field for distinct_count), or an indicator {field: F, equals: V|[V...]}
// that is 1 when the event's string field F is one of the values, else 0.
type Value struct {
	Name   string  `yaml:"-"`
	Field  string  `yaml:"field"`
	Equals Strings `yaml:"equals"`
}

// UnmarshalYAML accepts a selector name or an indicator mapping.
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*v = Value{Name: n.Value}
		return nil
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "field" && k != "equals" {
				return fmt.Errorf("line %d: value: unknown key %q (an indicator has field and equals)", n.Content[i].Line, k)
			}
		}
		type plain Value
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*v = Value(p)
		return nil
	}
	return fmt.Errorf("line %d: value: want a selector name or {field, equals}", n.Line)
}

// WindowSpec is a feature's window as written in YAML.
type WindowSpec struct {
	// Kind is lifetime (default), tumbling, hopping, session or event.
	Kind string `yaml:"kind"`
	// Size is the length of a tumbling or hopping window.
	Size time.Duration `yaml:"size"`
	// Hop is the distance between the starts of hopping windows; Size must
	// be a multiple of it.
	Hop time.Duration `yaml:"hop"`
	// Gap closes a session window: events closer than Gap belong together.
	Gap time.Duration `yaml:"gap"`
}

// Feature is one feature definition as written in YAML.
type Feature struct {
	// Name is what a model Spec lists; unique.
	Name string `yaml:"name"`
	// Entity is user or session.
	Entity string `yaml:"entity"`
	// Events are the source event types.
	Events []string `yaml:"events"`
	// Filter keeps only events whose string fields equal one of the listed
	// values (every listed field must match).
	Filter map[string]Strings `yaml:"filter"`
	// Value is what is aggregated; see Value. Default "one".
	Value Value `yaml:"value"`
	// Aggregation: count, sum, mean, min, max, distinct_count, last, first,
	// time_since_last, time_since_first.
	Aggregation string `yaml:"aggregation"`
	// Window; default lifetime.
	Window WindowSpec `yaml:"window"`
	// Default is the value when the window holds no matching event.
	Default float64 `yaml:"default"`
	// Unit of time_since_*: ms, s (default), m, h, d.
	Unit string `yaml:"unit"`
	// MaxValue caps the value when set (e.g. hours since, capped at 720).
	MaxValue *float64 `yaml:"max_value"`
	// MaxDistinct bounds the values distinct_count remembers per window
	// (default 8, at most 64); see the package docs for what happens beyond.
	MaxDistinct int `yaml:"max_distinct"`
	// PointInTime N (1..8) makes a lifetime feature read at time t exclude
	// events later than t, exactly while at most N applied events of the key
	// are later than t: the N latest contributions are kept apart. For
	// features of a label's source (purchases), whose events can be applied
	// before an earlier trigger when input topics are consumed concurrently.
	PointInTime int `yaml:"point_in_time"`
}

// Definitions is a validated list of features, in the order vectors are read.
type Definitions struct {
	// Name names the set (e.g. the model it was written for).
	Name     string    `yaml:"name"`
	Features []Feature `yaml:"features"`

	compiled []def
}

// def is a validated feature in the form the engine runs.
type def struct {
	name     string
	entity   Entity
	types    uint16 // bit set over eventTypes
	filter   []cond
	sel      selector
	field    stringField // selString, selIndicator
	equals   []string    // selIndicator
	agg      Aggregation
	kind     WindowKind
	size     int64 // ms; tumbling and hopping
	hop      int64 // ms; hopping (== size for tumbling)
	gap      int64 // ms; session
	deflt    float64
	unit     float64 // ms per unit
	maxValue float64 // +Inf when not capped
	distinct int     // remembered distinct values per bucket
	pit      int     // point_in_time: latest contributions kept apart (0: off)
}

type cond struct {
	field  stringField
	values []string
}

//go:embed purchase_propensity.yaml
var purchasePropensityYAML []byte

// PurchasePropensity returns the definitions of the first model's 15
// features, the same names and values as the hand-written catalog of
// package features.
func PurchasePropensity() *Definitions {
	d, err := Parse(purchasePropensityYAML)
	if err != nil {
		panic("window: embedded purchase_propensity.yaml: " + err.Error())
	}
	return d
}

// Load reads and validates definitions from a YAML file.
func Load(path string) (*Definitions, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read feature definitions: %w", err)
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("cannot load feature definitions %s: %w", path, err)
	}
	return d, nil
}

// Parse decodes and validates definitions. Unknown keys are errors.
func Parse(b []byte) (*Definitions, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var d Definitions
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no feature definitions: empty document")
		}
		return nil, fmt.Errorf("cannot decode feature definitions: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Names returns the feature names in definition order.
func (d *Definitions) Names() []string {
	names := make([]string, len(d.Features))
	for i, f := range d.Features {
		names[i] = f.Name
	}
	return names
}

// Index returns the position of a feature, or -1.
func (d *Definitions) Index(name string) int {
	return slices.IndexFunc(d.Features, func(f Feature) bool { return f.Name == name })
}

// Len is the number of features, the length of a vector.
func (d *Definitions) Len() int { return len(d.Features) }

// Validate checks every feature and compiles it; errors name the feature
// and the field: feature "x": window.size: must be > 0.
func (d *Definitions) Validate() error {
	if len(d.Features) == 0 {
		return errors.New("features: at least one feature is required")
	}
	seen := map[string]int{}
	d.compiled = make([]def, len(d.Features))
	for i := range d.Features {
		f := &d.Features[i]
		if f.Name == "" {
			return fmt.Errorf("features[%d]: name: is required", i)
		}
		if j, dup := seen[f.Name]; dup {
			return fmt.Errorf("feature %q: name: duplicate of features[%d]", f.Name, j)
		}
		seen[f.Name] = i
		c, err := compile(f)
		if err != nil {
			return fmt.Errorf("feature %q: %w", f.Name, err)
		}
		d.compiled[i] = c
	}
	return nil
}

var units = map[string]float64{"": 1000, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

func compile(f *Feature) (def, error) {
	c := def{name: f.Name, deflt: f.Default, maxValue: math.Inf(1)}
	switch f.Entity {
	case "user":
		c.entity = User
	case "session":
		c.entity = Session
	case "":
		return c, errors.New("entity: is required (user or session)")
	default:
		return c, fmt.Errorf("entity: must be user or session, got %q", f.Entity)
	}
	if len(f.Events) == 0 {
		return c, errors.New("events: at least one event type is required")
	}
	for _, t := range f.Events {
		b := typeBit(t)
		if b == 0 {
			return c, fmt.Errorf("events: unknown event type %q (known: %s)", t, strings.Join(eventTypes[:], ", "))
		}
		if c.types&b != 0 {
			return c, fmt.Errorf("events: %q listed twice", t)
		}
		c.types |= b
	}
	fields := make([]string, 0, len(f.Filter))
	for name := range f.Filter {
		fields = append(fields, name)
	}
	slices.Sort(fields) // deterministic errors and evaluation order
	for _, name := range fields {
		sf, ok := stringFieldOf(name)
		if !ok {
			return c, fmt.Errorf("filter.%s: unknown field (known: %s)", name, strings.Join(stringFieldNames[:], ", "))
		}
		if len(f.Filter[name]) == 0 {
			return c, fmt.Errorf("filter.%s: at least one value is required", name)
		}
		c.filter = append(c.filter, cond{field: sf, values: slices.Clone(f.Filter[name])})
	}
	agg := slices.Index(aggregationNames[:], f.Aggregation)
	if agg < 0 {
		if f.Aggregation == "" {
			return c, errors.New("aggregation: is required")
		}
		return c, fmt.Errorf("aggregation: unknown %q (known: %s)", f.Aggregation, strings.Join(aggregationNames[:], ", "))
	}
	c.agg = Aggregation(agg)
	if err := c.compileValue(f); err != nil {
		return c, err
	}
	if f.Unit != "" && c.agg != TimeSinceLast && c.agg != TimeSinceFirst {
		return c, fmt.Errorf("unit: only time_since_last and time_since_first take a unit, not %s", c.agg)
	}
	u, ok := units[f.Unit]
	if !ok {
		return c, fmt.Errorf("unit: must be ms, s, m, h or d, got %q", f.Unit)
	}
	c.unit = u
	if f.MaxValue != nil {
		if math.IsNaN(*f.MaxValue) {
			return c, errors.New("max_value: must be a number")
		}
		c.maxValue = *f.MaxValue
	}
	if math.IsNaN(f.Default) || math.IsInf(f.Default, 0) {
		return c, errors.New("default: must be a finite number")
	}
	if c.agg == DistinctCount {
		c.distinct = 8
		if f.MaxDistinct != 0 {
			c.distinct = f.MaxDistinct
		}
		if c.distinct < 1 || c.distinct > 64 {
			return c, fmt.Errorf("max_distinct: must be in [1, 64], got %d", f.MaxDistinct)
		}
	} else if f.MaxDistinct != 0 {
		return c, fmt.Errorf("max_distinct: only distinct_count takes it, not %s", c.agg)
	}
	if err := c.compileWindow(&f.Window); err != nil {
		return c, err
	}
	if f.PointInTime != 0 {
		switch {
		case f.PointInTime < 0 || f.PointInTime > 8:
			return c, fmt.Errorf("point_in_time: must be in [1, 8], got %d", f.PointInTime)
		case c.kind != Lifetime:
			return c, fmt.Errorf("point_in_time: only lifetime windows take it, not %s", c.kind)
		case c.agg == DistinctCount:
			return c, errors.New("point_in_time: distinct_count does not take it")
		}
		c.pit = f.PointInTime
	}
	return c, nil
}

func (c *def) compileValue(f *Feature) error {
	v := f.Value
	switch c.agg {
	case Count, TimeSinceLast, TimeSinceFirst:
		if v.Name != "" && v.Name != "one" || v.Field != "" {
			return fmt.Errorf("value: %s takes no value, got %s", c.agg, v.describe())
		}
		c.sel = selOne
		return nil
	case DistinctCount:
		if v.Field != "" || v.Name == "" {
			return fmt.Errorf("value: distinct_count needs a string field (%s), got %s", strings.Join(stringFieldNames[:], ", "), v.describe())
		}
		sf, ok := stringFieldOf(v.Name)
		if !ok {
			return fmt.Errorf("value: distinct_count needs a string field (%s), got %q", strings.Join(stringFieldNames[:], ", "), v.Name)
		}
		c.sel, c.field = selString, sf
		return nil
	}
	if v.Field != "" || len(v.Equals) > 0 {
		if v.Field == "" || len(v.Equals) == 0 {
			return errors.New("value: an indicator needs both field and equals")
		}
		sf, ok := stringFieldOf(v.Field)
		if !ok {
			return fmt.Errorf("value.field: unknown field %q (known: %s)", v.Field, strings.Join(stringFieldNames[:], ", "))
		}
		c.sel, c.field, c.equals = selIndicator, sf, slices.Clone(v.Equals)
		return nil
	}
	if v.Name == "" {
		return fmt.Errorf("value: %s needs a value (%s or an indicator {field, equals})", c.agg, selectorNames())
	}
	ns, ok := numericSelectors[v.Name]
	if !ok {
		return fmt.Errorf("value: unknown selector %q (known: %s, or an indicator {field, equals})", v.Name, selectorNames())
	}
	for _, t := range eventTypes {
		if c.types&typeBit(t) != 0 && !slices.Contains(ns.carried, t) {
			return fmt.Errorf("value: %s is not carried by event type %s", v.Name, t)
		}
	}
	c.sel = ns.sel
	return nil
}

func (v Value) describe() string {
	if v.Field != "" {
		return fmt.Sprintf("{field: %s, equals: %v}", v.Field, []string(v.Equals))
	}
	return fmt.Sprintf("%q", v.Name)
}

func selectorNames() string {
	return "one, price, quantity, line_total, cart_delta, cart_value, items, amount"
}

func (c *def) compileWindow(w *WindowSpec) error {
	kind := slices.Index(windowKindNames[:], w.Kind)
	if w.Kind == "" {
		kind = int(Lifetime)
	}
	if kind < 0 {
		return fmt.Errorf("window.kind: unknown %q (known: %s)", w.Kind, strings.Join(windowKindNames[:], ", "))
	}
	c.kind = WindowKind(kind)
	need := func(name string, d time.Duration, want bool) error {
		switch {
		case want && d <= 0:
			return fmt.Errorf("window.%s: must be > 0, got %s", name, d)
		case want && d%time.Millisecond != 0:
			return fmt.Errorf("window.%s: must be a whole number of milliseconds, got %s", name, d)
		case !want && d != 0:
			return fmt.Errorf("window.%s: a %s window takes no %s", name, c.kind, name)
		}
		return nil
	}
	tumbling, hopping, session := c.kind == Tumbling, c.kind == Hopping, c.kind == SessionGap
	if err := need("size", w.Size, tumbling || hopping); err != nil {
		return err
	}
	if err := need("hop", w.Hop, hopping); err != nil {
		return err
	}
	if err := need("gap", w.Gap, session); err != nil {
		return err
	}
	c.size, c.hop, c.gap = w.Size.Milliseconds(), w.Hop.Milliseconds(), w.Gap.Milliseconds()
	if tumbling {
		c.hop = c.size
	}
	if hopping {
		if c.hop > c.size {
			return fmt.Errorf("window.hop: must be <= window.size (%s), got %s", w.Size, w.Hop)
		}
		if c.size%c.hop != 0 {
			return fmt.Errorf("window.size: must be a multiple of window.hop (%s), got %s", w.Hop, w.Size)
		}
		if c.size/c.hop > 64 {
			return fmt.Errorf("window.hop: at most 64 hops per window, got %d", c.size/c.hop)
		}
	}
	return nil
}

// matches reports whether an event feeds the feature.
func (c *def) matches(e *schemas.Event, bit uint16) bool {
	if c.types&bit == 0 {
		return false
	}
	for i := range c.filter {
		if !slices.Contains(c.filter[i].values, c.filter[i].field.of(e)) {
			return false
		}
	}
	return true
}

// value returns the feature's value of an event.
func (c *def) value(e *schemas.Event) float64 {
	switch c.sel {
	case selPrice:
		return e.Price
	case selQuantity:
		return float64(e.Quantity)
	case selLineTotal:
		return e.Price * float64(e.Quantity)
	case selCartDelta:
		if e.Type == schemas.RemoveFromCart {
			return -e.Price * float64(e.Quantity)
		}
		return e.Price * float64(e.Quantity)
	case selCartValue:
		return e.CartValue
	case selItems:
		return float64(e.Items)
	case selAmount:
		return e.Amount
	case selIndicator:
		if slices.Contains(c.equals, c.field.of(e)) {
			return 1
		}
		return 0
	}
	return 1
}
