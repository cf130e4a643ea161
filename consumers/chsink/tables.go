package chsink

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// Table names, as in schemas/clickhouse.
const (
	TableEvents          = "events"
	TableFeatures        = "features"
	TablePredictions     = "predictions"
	TableLabels          = "labels"
	TableWindows         = "windows"
	TableAlerts          = "alerts"
	TableReports         = "reports"
	TableRetrainRequests = "retrain_requests"
	TableModelVersions   = "model_versions"
	TableModelAliases    = "model_aliases"
	TableDeadLetters     = "dead_letters"
)

// segmentCols are the segment columns every derived record carries.
type segmentCols struct{ device, country, referrer *col[string] }

func (t *table) segments() segmentCols {
	return segmentCols{t.str("device"), t.str("country"), t.str("referrer")}
}

func (s segmentCols) add(v schemas.Segments) {
	s.device.add(v.Device)
	s.country.add(v.Country)
	s.referrer.add(v.Referrer)
}

// kafkaCols are where a row came from.
type kafkaCols struct {
	partition *col[uint32]
	offset    *col[uint64]
}

func (t *table) kafka() kafkaCols { return kafkaCols{t.u32("kafka_partition"), t.u64("kafka_offset")} }

func (k kafkaCols) add(r *kgo.Record) {
	k.partition.add(uint32(r.Partition))
	k.offset.add(uint64(r.Offset))
}

// count clamps an int to a UInt32 column: negative sentinels (absent) are 0.
func count(v int) uint32 {
	if v < 0 {
		return 0
	}
	return uint32(min(v, math.MaxUint32))
}

// amount stores an absent (NaN) optional number as 0.
func amount(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

type eventRows struct {
	*table
	eventID, typ, userID, sessionID, device, country, referrer, page, query, category,
	productID, orderID, currency, topic *col[string]
	ts                       *timeCol
	schemaVersion            *col[uint16]
	price, cartValue, amount *col[float64]
	quantity, items          *col[uint32]
	kafka                    kafkaCols
}

func newEventRows() *eventRows {
	t := &table{name: TableEvents}
	r := &eventRows{table: t}
	r.eventID, r.typ = t.str("event_id"), t.str("type")
	r.ts = t.time("ts")
	r.userID, r.sessionID = t.str("user_id"), t.str("session_id")
	r.schemaVersion = t.u16("schema_version")
	r.device, r.country, r.referrer = t.str("device"), t.str("country"), t.str("referrer")
	r.page, r.query, r.category = t.str("page"), t.str("query"), t.str("category")
	r.productID, r.price, r.quantity = t.str("product_id"), t.f64("price"), t.u32("quantity")
	r.cartValue, r.items = t.f64("cart_value"), t.u32("items")
	r.orderID, r.amount, r.currency = t.str("order_id"), t.f64("amount"), t.str("currency")
	r.topic = t.str("kafka_topic")
	r.kafka = t.kafka()
	return r
}

// add appends a validated event; its strings may point into the record's
// value (zero-copy decoding), which lives until the batch is sent.
func (r *eventRows) add(e *schemas.Event, rec *kgo.Record, now time.Time) {
	r.eventID.add(e.EventID)
	r.typ.add(e.Type)
	r.ts.addMillis(e.TimeMillis)
	r.userID.add(e.UserID)
	r.sessionID.add(e.SessionID)
	r.schemaVersion.add(uint16(max(e.SchemaVersion, 0)))
	r.device.add(e.Device)
	r.country.add(e.Country)
	r.referrer.add(e.Referrer)
	r.page.add(e.Page)
	r.query.add(e.Query)
	r.category.add(e.Category)
	r.productID.add(e.ProductID)
	r.price.add(amount(e.Price))
	r.quantity.add(count(e.Quantity))
	r.cartValue.add(amount(e.CartValue))
	r.items.add(count(e.Items))
	r.orderID.add(e.OrderID)
	r.amount.add(amount(e.Amount))
	r.currency.add(e.Currency)
	r.topic.add(rec.Topic)
	r.kafka.add(rec)
	r.added(now)
}

type featureRows struct {
	*table
	model, eventID, eventType, userID, sessionID *col[string]
	eventTime                                    *timeCol
	seg                                          segmentCols
	values                                       *col[[]float64]
	kafka                                        kafkaCols
}

func newFeatureRows() *featureRows {
	t := &table{name: TableFeatures}
	r := &featureRows{table: t}
	r.model, r.eventID, r.eventType = t.str("model"), t.str("event_id"), t.str("event_type")
	r.eventTime = t.time("event_time")
	r.userID, r.sessionID = t.str("user_id"), t.str("session_id")
	r.seg = t.segments()
	r.values = t.f64s("values")
	r.kafka = t.kafka()
	return r
}

func (r *featureRows) add(v *schemas.FeatureVector, rec *kgo.Record, now time.Time) {
	r.model.add(v.Model)
	r.eventID.add(v.EventID)
	r.eventType.add(v.EventType)
	r.eventTime.add(v.EventTime)
	r.userID.add(v.UserID)
	r.sessionID.add(v.SessionID)
	r.seg.add(v.Segments)
	r.values.add(nonNil(v.Values))
	r.kafka.add(rec)
	r.added(now)
}

type predictionRows struct {
	*table
	model, eventID, eventType, userID, sessionID *col[string]
	version                                      *col[uint32]
	score                                        *col[float64]
	eventTime, scoredAt                          *timeCol
	seg                                          segmentCols
	shadow                                       *col[uint8]
	kafka                                        kafkaCols
}

func newPredictionRows() *predictionRows {
	t := &table{name: TablePredictions}
	r := &predictionRows{table: t}
	r.model, r.version, r.score = t.str("model"), t.u32("version"), t.f64("score")
	r.eventID, r.eventType = t.str("event_id"), t.str("event_type")
	r.eventTime = t.time("event_time")
	r.userID, r.sessionID = t.str("user_id"), t.str("session_id")
	r.seg = t.segments()
	r.scoredAt = t.time("scored_at")
	r.shadow = t.u8("shadow")
	r.kafka = t.kafka()
	return r
}

func (r *predictionRows) add(p *schemas.Prediction, rec *kgo.Record, now time.Time) {
	r.model.add(p.Model)
	r.version.add(count(p.Version))
	r.score.add(p.Score)
	r.eventID.add(p.EventID)
	r.eventType.add(p.EventType)
	r.eventTime.add(p.EventTime)
	r.userID.add(p.UserID)
	r.sessionID.add(p.SessionID)
	r.seg.add(p.Segments)
	r.scoredAt.add(p.ScoredAt)
	r.shadow.add(boolByte(p.Shadow))
	r.kafka.add(rec)
	r.added(now)
}

type labelRows struct {
	*table
	model, eventID, userID, sessionID, reason *col[string]
	version                                   *col[uint32]
	score                                     *col[float64]
	eventTime, labelTime                      *timeCol
	seg                                       segmentCols
	values                                    *col[[]float64]
	label                                     *col[uint8]
	kafka                                     kafkaCols
}

func newLabelRows() *labelRows {
	t := &table{name: TableLabels}
	r := &labelRows{table: t}
	r.model, r.version, r.score = t.str("model"), t.u32("version"), t.f64("score")
	r.eventID = t.str("event_id")
	r.eventTime = t.time("event_time")
	r.userID, r.sessionID = t.str("user_id"), t.str("session_id")
	r.seg = t.segments()
	r.values = t.f64s("values")
	r.label, r.reason = t.u8("label"), t.str("reason")
	r.labelTime = t.time("label_time")
	r.kafka = t.kafka()
	return r
}

func (r *labelRows) add(l *schemas.Label, rec *kgo.Record, now time.Time) {
	r.model.add(l.Model)
	r.version.add(count(l.Version))
	r.score.add(l.Score)
	r.eventID.add(l.EventID)
	r.eventTime.add(l.EventTime)
	r.userID.add(l.UserID)
	r.sessionID.add(l.SessionID)
	r.seg.add(l.Segments)
	r.values.add(nonNil(l.Values))
	r.label.add(uint8(min(max(l.Label, 0), 1)))
	r.reason.add(l.Reason)
	r.labelTime.add(l.LabelTime)
	r.kafka.add(rec)
	r.added(now)
}

type windowRows struct {
	*table
	definitions, model, feature, aggregation, kind, entity, key *col[string]
	seg                                                         segmentCols
	windowFrom, windowTo, watermark                             *timeCol
	value                                                       *col[float64]
	events, inputPartition                                      *col[uint32]
	kafka                                                       kafkaCols
}

func newWindowRows() *windowRows {
	t := &table{name: TableWindows}
	r := &windowRows{table: t}
	r.definitions, r.model, r.feature = t.str("definitions"), t.str("model"), t.str("feature")
	r.aggregation, r.kind, r.entity, r.key = t.str("aggregation"), t.str("kind"), t.str("entity"), t.str("key")
	r.seg = t.segments()
	r.windowFrom, r.windowTo = t.time("window_from"), t.time("window_to")
	r.value, r.events = t.f64("value"), t.u32("events")
	r.watermark = t.time("watermark")
	r.inputPartition = t.u32("input_partition")
	r.kafka = t.kafka()
	return r
}

func (r *windowRows) add(w *schemas.WindowResult, rec *kgo.Record, now time.Time) {
	r.definitions.add(w.Definitions)
	r.model.add(w.Model)
	r.feature.add(w.Feature)
	r.aggregation.add(w.Aggregation)
	r.kind.add(w.Kind)
	r.entity.add(w.Entity)
	r.key.add(w.Key)
	r.seg.add(w.Segments)
	r.windowFrom.add(w.Window.From)
	r.windowTo.add(w.Window.To)
	r.value.add(finite(w.Value))
	r.events.add(count(w.Events))
	r.watermark.add(w.Watermark)
	r.inputPartition.add(count(w.InputPartition))
	r.kafka.add(rec)
	r.added(now)
}

type alertRows struct {
	*table
	id, kind, status, dedupKey, incident, severity, model, feature, segment, statistic, comparison *col[string]
	version, samples                                                                               *col[uint32]
	value, threshold                                                                               *col[float64]
	windowFrom, windowTo, eventTime, firedAt                                                       *timeCol
	evidence                                                                                       evidenceCols
}

func newAlertRows() *alertRows {
	t := &table{name: TableAlerts}
	r := &alertRows{table: t}
	r.id, r.kind, r.status = t.str("id"), t.str("kind"), t.str("status")
	r.dedupKey, r.incident, r.severity = t.str("dedup_key"), t.str("incident"), t.str("severity")
	r.model, r.version = t.str("model"), t.u32("version")
	r.feature, r.segment, r.statistic = t.str("feature"), t.str("segment"), t.str("statistic")
	r.value, r.threshold, r.comparison = t.f64("value"), t.f64("threshold"), t.str("comparison")
	r.windowFrom, r.windowTo = t.time("window_from"), t.time("window_to")
	r.samples = t.u32("samples")
	r.eventTime, r.firedAt = t.time("event_time"), t.time("fired_at")
	r.evidence = t.evidence("evidence")
	return r
}

func (r *alertRows) add(a *schemas.Alert, now time.Time) {
	r.id.add(a.ID)
	r.kind.add(a.Kind)
	status := a.Status
	if status == "" {
		status = schemas.AlertFiring // records from before statuses existed
	}
	r.status.add(status)
	r.dedupKey.add(a.DedupKey)
	r.incident.add(a.Incident)
	r.severity.add(a.Severity)
	r.model.add(a.Model)
	r.version.add(count(a.Version))
	r.feature.add(a.Feature)
	r.segment.add(a.Segment)
	r.statistic.add(a.Statistic)
	r.value.add(finite(a.Value))
	r.threshold.add(finite(a.Threshold))
	r.comparison.add(a.Comparison)
	r.windowFrom.add(a.Window.From)
	r.windowTo.add(a.Window.To)
	r.samples.add(count(a.Samples))
	r.eventTime.add(a.EventTime)
	r.firedAt.add(a.FiredAt)
	r.evidence.add(a.Evidence)
	r.added(now)
}

type reportRows struct {
	*table
	id, kind, model, segment, feature, statistic, method, comparison *col[string]
	version, samples, refRows                                        *col[uint32]
	value, pValue, threshold                                         *col[float64]
	breached                                                         *col[uint8]
	windowFrom, windowTo, eventTime, reportedAt                      *timeCol
}

func newReportRows() *reportRows {
	t := &table{name: TableReports}
	r := &reportRows{table: t}
	r.id, r.kind, r.model, r.version = t.str("id"), t.str("kind"), t.str("model"), t.u32("version")
	r.segment, r.feature, r.statistic, r.method = t.str("segment"), t.str("feature"), t.str("statistic"), t.str("method")
	r.value, r.pValue, r.threshold, r.comparison = t.f64("value"), t.f64("p_value"), t.f64("threshold"), t.str("comparison")
	r.breached = t.u8("breached")
	r.windowFrom, r.windowTo = t.time("window_from"), t.time("window_to")
	r.samples, r.refRows = t.u32("samples"), t.u32("reference_rows")
	r.eventTime, r.reportedAt = t.time("event_time"), t.time("reported_at")
	return r
}

func (r *reportRows) add(v *schemas.Report, now time.Time) {
	r.id.add(v.ID)
	r.kind.add(v.Kind)
	r.model.add(v.Model)
	r.version.add(count(v.Version))
	r.segment.add(v.Segment)
	r.feature.add(v.Feature)
	r.statistic.add(v.Statistic)
	r.method.add(v.Method)
	r.value.add(finite(v.Value))
	p := math.NaN() // no p-value: nan, so an avg over p-values cannot mistake it for 0
	if v.PValue != nil {
		p = finite(*v.PValue)
	}
	r.pValue.add(p)
	r.threshold.add(finite(v.Threshold))
	r.comparison.add(v.Comparison)
	r.breached.add(boolByte(v.Breached))
	r.windowFrom.add(v.Window.From)
	r.windowTo.add(v.Window.To)
	r.samples.add(count(v.Samples))
	r.refRows.add(count(v.ReferenceRows))
	r.eventTime.add(v.EventTime)
	r.reportedAt.add(v.ReportedAt)
	r.added(now)
}

type retrainRows struct {
	*table
	key, model, reason  *col[string]
	fromVersion         *col[uint32]
	alerts              *col[[]string]
	dataFrom, requested *timeCol
	decided             *timeCol
}

func newRetrainRows() *retrainRows {
	t := &table{name: TableRetrainRequests}
	r := &retrainRows{table: t}
	r.key, r.model, r.fromVersion, r.reason = t.str("idempotency_key"), t.str("model"), t.u32("from_version"), t.str("reason")
	r.alerts = t.strs("alerts")
	r.dataFrom, r.requested = t.time("data_from"), t.time("requested_at")
	r.decided = t.time("decided_at") // zero in requests from before it existed
	return r
}

func (r *retrainRows) add(q *schemas.RetrainRequest, now time.Time) {
	r.key.add(q.IdempotencyKey)
	r.model.add(q.Model)
	r.fromVersion.add(count(q.FromVersion))
	r.reason.add(q.Reason)
	r.alerts.add(nonNil(q.Alerts))
	r.dataFrom.add(q.DataFrom)
	r.requested.add(q.RequestedAt)
	r.decided.add(q.DecidedAt)
	r.added(now)
}

type versionRows struct {
	*table
	model, backend, reference, gateReason, retrainOf, datasetSHA, datasetSource *col[string]
	version, parent, holdoutRows, rows, datasetRows                             *col[uint32]
	createdAt, trainFrom, trainTo, datasetFrom, datasetTo                       *timeCol
	features                                                                    *col[[]string]
	weights, mean, std                                                          *col[[]float64]
	bias, l2, auc, logLoss, champAUC, champLogLoss                              *col[float64]
	gatePassed                                                                  *col[uint8]
	hyper                                                                       evidenceCols
}

func newVersionRows() *versionRows {
	t := &table{name: TableModelVersions}
	r := &versionRows{table: t}
	r.model, r.version, r.parent = t.str("model"), t.u32("version"), t.u32("parent")
	r.createdAt = t.time("created_at")
	r.backend, r.features = t.str("backend"), t.strs("features")
	r.weights, r.bias, r.mean, r.std, r.l2 = t.f64s("weights"), t.f64("bias"), t.f64s("mean"), t.f64s("std"), t.f64("l2")
	r.reference = t.str("reference")
	r.auc, r.logLoss = t.f64("auc"), t.f64("log_loss")
	r.champAUC, r.champLogLoss = t.f64("champion_auc"), t.f64("champion_log_loss")
	r.holdoutRows, r.gatePassed, r.gateReason = t.u32("holdout_rows"), t.u8("gate_passed"), t.str("gate_reason")
	r.trainFrom, r.trainTo = t.time("training_window_from"), t.time("training_window_to")
	r.rows, r.retrainOf = t.u32("rows"), t.str("retrain_of")
	r.hyper = t.evidence("hyperparameters")
	r.datasetRows = t.u32("dataset_rows")
	r.datasetFrom, r.datasetTo = t.time("dataset_from"), t.time("dataset_to")
	r.datasetSHA, r.datasetSource = t.str("dataset_sha256"), t.str("dataset_source")
	return r
}

func (r *versionRows) add(v *schemas.ModelVersion, now time.Time) error {
	ref, err := json.Marshal(v.Reference)
	if err != nil {
		return err
	}
	r.model.add(v.Model)
	r.version.add(count(v.Version))
	r.parent.add(count(v.Parent))
	r.createdAt.add(v.CreatedAt)
	r.backend.add(v.Backend)
	r.features.add(nonNil(v.Features))
	r.weights.add(nonNil(v.Weights))
	r.bias.add(finite(v.Bias))
	r.mean.add(nonNil(v.Mean))
	r.std.add(nonNil(v.Std))
	r.l2.add(finite(v.L2))
	r.reference.add(string(ref))
	m := v.Metrics
	r.auc.add(finite(m.AUC))
	r.logLoss.add(finite(m.LogLoss))
	r.champAUC.add(finite(m.ChampionAUC))
	r.champLogLoss.add(finite(m.ChampionLogLoss))
	r.holdoutRows.add(count(m.HoldoutRows))
	r.gatePassed.add(boolByte(m.GatePassed))
	r.gateReason.add(m.GateReason)
	r.trainFrom.add(v.Training.From)
	r.trainTo.add(v.Training.To)
	r.rows.add(count(v.Rows))
	r.retrainOf.add(v.RetrainOf)
	r.hyper.add(v.Hyperparameters)
	ds := v.Dataset
	if ds == nil {
		ds = &schemas.Dataset{}
	}
	r.datasetRows.add(count(ds.Rows))
	r.datasetFrom.add(ds.From)
	r.datasetTo.add(ds.To)
	r.datasetSHA.add(ds.SHA256)
	r.datasetSource.add(ds.Source)
	r.added(now)
	return nil
}

type aliasRows struct {
	*table
	model, alias, reason, decision, owner, retrainOf *col[string]
	version, previous, seq                           *col[uint32]
	at                                               *timeCol
	evidence                                         evidenceCols
}

func newAliasRows() *aliasRows {
	t := &table{name: TableModelAliases}
	r := &aliasRows{table: t}
	r.model, r.alias, r.version, r.previous, r.reason = t.str("model"), t.str("alias"), t.u32("version"), t.u32("previous"), t.str("reason")
	r.at = t.time("at")
	r.seq, r.decision = t.u32("seq"), t.str("decision")
	r.evidence = t.evidence("evidence")
	r.owner, r.retrainOf = t.str("owner"), t.str("retrain_of")
	return r
}

func (r *aliasRows) add(a *schemas.AliasMove, now time.Time) {
	r.model.add(a.Model)
	r.alias.add(a.Alias)
	r.version.add(count(a.Version))
	r.previous.add(count(a.Previous))
	r.reason.add(a.Reason)
	r.at.add(a.At)
	r.seq.add(count(a.Seq))
	r.decision.add(a.Decision)
	r.evidence.add(a.Evidence)
	r.owner.add(a.Owner)
	r.retrainOf.add(a.RetrainOf)
	r.added(now)
}

type deadLetterRows struct {
	*table
	topic, reason, field, key, value *col[string]
	partition                        *col[uint32]
	offset, originalBytes            *col[uint64]
	at                               *timeCol
}

func newDeadLetterRows() *deadLetterRows {
	t := &table{name: TableDeadLetters}
	r := &deadLetterRows{table: t}
	r.topic, r.partition, r.offset = t.str("source_topic"), t.u32("source_partition"), t.u64("source_offset")
	r.reason, r.field, r.key, r.value = t.str("reason"), t.str("field"), t.str("key"), t.str("value")
	r.originalBytes = t.u64("original_bytes")
	r.at = t.time("dead_lettered_at")
	return r
}

// add keeps a dead letter. A record without source headers (not written by
// Driftline) is keyed by its own place in the DLQ topic.
func (r *deadLetterRows) add(rec *kgo.Record, header func(string) string, now time.Time) {
	topic := header(schemas.HeaderSourceTopic)
	part, err1 := strconv.ParseUint(header(schemas.HeaderSourcePartition), 10, 32)
	off, err2 := strconv.ParseUint(header(schemas.HeaderSourceOffset), 10, 64)
	if topic == "" || err1 != nil || err2 != nil {
		topic, part, off = rec.Topic, uint64(rec.Partition), uint64(rec.Offset)
	}
	orig, err := strconv.ParseUint(header(schemas.HeaderOriginalBytes), 10, 64)
	if err != nil {
		orig = uint64(len(rec.Value))
	}
	r.topic.add(topic)
	r.partition.add(uint32(part))
	r.offset.add(off)
	r.reason.add(header(schemas.HeaderReason))
	r.field.add(header(schemas.HeaderField))
	r.key.add(string(rec.Key))
	r.value.add(string(rec.Value))
	r.originalBytes.add(orig)
	r.at.add(rec.Timestamp)
	r.added(now)
}

// evidenceCols keep a map[string]float64 as parallel key and value arrays
// (no Map type on 18.16), keys sorted.
type evidenceCols struct {
	keys   *col[[]string]
	values *col[[]float64]
}

func (t *table) evidence(name string) evidenceCols {
	return evidenceCols{t.strs(name + "_keys"), t.f64s(name + "_values")}
}

func (e evidenceCols) add(m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values := make([]float64, len(keys))
	for i, k := range keys {
		values[i] = finite(m[k])
	}
	e.keys.add(keys)
	e.values.add(values)
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// finite keeps NaN and infinities out of Float64 columns that analysts
// aggregate: they become 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
