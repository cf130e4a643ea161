package schemas

import (
	"strconv"
	"time"
)

// Segments are the categorical attributes every output record carries so
// monitors can slice by them.
type Segments struct {
	Device   string `json:"device,omitempty"`
	Country  string `json:"country,omitempty"`
	Referrer string `json:"referrer,omitempty"`
}

// FeatureVector is written to driftline.features on every scored trigger
// event: the values the model saw, in the order of the model spec's feature
// list (Names on the spec, not repeated per record).
type FeatureVector struct {
	Model     string    `json:"model"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	EventTime time.Time `json:"event_time"`
	UserID    string    `json:"user_id"`
	SessionID string    `json:"session_id"`
	Segments
	Values []float64 `json:"values"`
}

// Prediction is written to driftline.predictions: one per scored trigger
// event while the model has a champion.
type Prediction struct {
	Model     string    `json:"model"`
	Version   int       `json:"version"`
	Score     float64   `json:"score"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	EventTime time.Time `json:"event_time"`
	UserID    string    `json:"user_id"`
	SessionID string    `json:"session_id"`
	Segments
	ScoredAt time.Time `json:"scored_at"`
	// Shadow marks a prediction of a candidate scored beside the champion
	// (Version is the candidate's): it was not served, and monitors of the
	// champion must not count it.
	Shadow bool `json:"shadow,omitempty"`
}

// Label outcomes.
const (
	LabelReasonPurchase = "purchase" // a purchase of the session arrived within the horizon
	LabelReasonHorizon  = "horizon"  // the watermark passed prediction time + horizon without one
)

// Label is written to driftline.labels once a feature vector's outcome is
// known. It carries the served vector (point-in-time correct training data)
// and, when a champion scored it, the model version and score.
type Label struct {
	Model     string    `json:"model"`
	Version   int       `json:"version"` // 0: no champion scored this vector (cold start)
	Score     float64   `json:"score"`
	EventID   string    `json:"event_id"`
	EventTime time.Time `json:"event_time"`
	UserID    string    `json:"user_id"`
	SessionID string    `json:"session_id"`
	Segments
	Values    []float64 `json:"values"`
	Label     int       `json:"label"` // 1 positive, 0 negative
	Reason    string    `json:"reason"`
	LabelTime time.Time `json:"label_time"` // event time at which the outcome became known
}

// Alert kinds.
const (
	AlertDrift           = "drift"            // a feature's distribution moved
	AlertPredictionDrift = "prediction_drift" // the champion's score distribution moved (Feature is "score")
	AlertAccuracy        = "accuracy"         // a rolling accuracy metric fell below its floor
	AlertErrorChange     = "error_change"     // a change detector (ADWIN, Page-Hinkley, DDM) fired on the error stream
	AlertFairness        = "fairness"         // a segment's accuracy fell a configured gap below the overall
)

// Alert statuses: an incident opens with a firing alert and closes with a
// resolved one carrying the same DedupKey and Incident.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Alert severities.
const (
	SeverityInfo     = "info" // resolved alerts
	SeverityWarning  = "warning"
	SeverityCritical = "critical" // the value is far past its threshold (see the monitors package doc)
)

// Alert is published to driftline.alerts when a monitor's threshold is
// breached. Subscribers (on-call, ML engineers) read it as documented in the
// README.
type Alert struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Status string `json:"status,omitempty"` // AlertFiring or AlertResolved; empty in records from before statuses existed: firing
	// DedupKey names what is watched (model, version, kind, segment,
	// feature, statistic) and is the same on every alert about it; Incident
	// is the ID of the firing alert that opened the incident, on it and on
	// the resolved alert that closes it.
	DedupKey  string  `json:"dedup_key,omitempty"`
	Incident  string  `json:"incident,omitempty"`
	Severity  string  `json:"severity"`
	Model     string  `json:"model"`
	Version   int     `json:"version"`
	Feature   string  `json:"feature,omitempty"`
	Segment   string  `json:"segment,omitempty"` // "device=mobile"; empty: all traffic
	Statistic string  `json:"statistic"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Comparison says how Value breaches Threshold: ">" (a distance, PSI)
	// or "<" (a p-value, AUC).
	Comparison string    `json:"comparison,omitempty"`
	Window     Window    `json:"window"`
	Samples    int       `json:"samples"`
	EventTime  time.Time `json:"event_time"` // event time of the evaluation that breached (or cleared)
	FiredAt    time.Time `json:"fired_at"`   // wall time
	// Evidence holds the other figures of the evaluation: the other
	// statistics of the same window (psi, p_value, ...), the multiple-testing
	// correction (tests, alpha), the reference rows.
	Evidence map[string]float64 `json:"evidence,omitempty"`
}

// Window is an event-time range.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// TopicReports carries the monitor's reports (Report), keyed by model.
const TopicReports = "driftline.reports"

// Report is one statistic of one monitor evaluation, published to
// driftline.reports at every evaluation whether or not anything breached:
// per (model version, segment, feature, statistic) for drift and
// prediction drift (Kind AlertDrift, AlertPredictionDrift), per (model
// version, segment, metric) for accuracy (Kind AlertAccuracy). Subscribers
// read it as documented in docs/monitors.md; ID is deterministic, so a
// redelivered report is the same record.
type Report struct {
	// ID is <model>/v<version>/<kind>/[<segment>/][<feature>/]<statistic>/<event time, RFC 3339 nano>.
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	Segment string `json:"segment,omitempty"` // "device=mobile"; empty: all traffic
	Feature string `json:"feature,omitempty"` // "score" for prediction drift; empty for accuracy
	// Statistic is what Value is: psi, ks (the KS statistic D), chisquare
	// (χ²), wasserstein (normalised), jensenshannon; roc_auc, log_loss,
	// brier, ece, precision, recall.
	Statistic string `json:"statistic"`
	// Method is the statistic the alert policy judges this feature (or
	// accuracy) by: a report whose Statistic is its Method is the judged
	// one, the others (PSI beside a Wasserstein feature, log loss beside
	// ROC AUC) are context.
	Method string  `json:"method"`
	Value  float64 `json:"value"`
	// PValue is the test's p-value (ks, chisquare); absent for distances
	// and accuracy metrics.
	PValue *float64 `json:"p_value,omitempty"`
	// Threshold and Comparison are the judged report's bar, after the
	// multiple-testing correction for p-values: a p-value breaches below
	// it ("<"), a distance above it (">"), ROC AUC below the floor
	// ("<"). Absent on context reports.
	Threshold  float64 `json:"threshold,omitempty"`
	Comparison string  `json:"comparison,omitempty"`
	// Breached: this evaluation was over the bar (an alert fires only
	// after consecutive breaches, see the alert policy).
	Breached      bool      `json:"breached"`
	Window        Window    `json:"window"`
	Samples       int       `json:"samples"`
	ReferenceRows int       `json:"reference_rows,omitempty"` // drift: rows behind the reference
	EventTime     time.Time `json:"event_time"`               // event time of the evaluation
	ReportedAt    time.Time `json:"reported_at"`              // wall time
}

// RetrainRequest is published to driftline.retrain. Trainers handle each
// IdempotencyKey once however often it is delivered.
type RetrainRequest struct {
	IdempotencyKey string    `json:"idempotency_key"`
	Model          string    `json:"model"`
	FromVersion    int       `json:"from_version"` // champion at the time; 0 for bootstrap
	Reason         string    `json:"reason"`
	Alerts         []string  `json:"alerts,omitempty"`
	DataFrom       time.Time `json:"data_from"`    // train on labelled vectors with event time >= this
	RequestedAt    time.Time `json:"requested_at"` // wall time
	// DecidedAt is the event time the monitor decided the request at (the
	// evaluation that asked, or that released a request the hourly budget
	// held). A restarting monitor restores its retrain cooldown and budget
	// from it. Optional: zero (absent, or 0001-01-01T00:00:00Z) in records
	// from before it existed and in the trainers' bootstrap requests.
	DecidedAt time.Time `json:"decided_at"`
}

// Registry record kinds on driftline.models.
const (
	RegistryVersion = "version"
	RegistryAlias   = "alias"
)

// AliasChampion is the alias every scorer serves.
const AliasChampion = "champion"

// Other aliases of a model. AliasShadow points at a candidate scored beside
// the champion (never served) until it is promoted or rejected; version 0
// clears an alias. AliasChallenger and AliasRetired are for operators
// (`driftline models promote --alias`).
const (
	AliasShadow     = "shadow"
	AliasChallenger = "challenger"
	AliasRetired    = "retired"
	// AliasReserved is the trainers' version-number reservations: each
	// move reserves Version (its Seq) for the retrain request RetrainOf by
	// Owner, and the first reservation of a number in the log wins it (see
	// trainers.Registry.Reserve). It never points at a served model.
	AliasReserved = "reserved"
)

// Decisions an alias move records (AliasMove.Decision).
const (
	DecisionGated          = "gated"           // the challenger passed the gate and became champion
	DecisionShadowStarted  = "shadow_started"  // the challenger passed the gate and is scored in shadow
	DecisionShadowPromoted = "shadow_promoted" // its realised accuracy in shadow held up: champion
	DecisionShadowRejected = "shadow_rejected" // its realised accuracy in shadow did not: shadow cleared
	DecisionRolledBack     = "rolled_back"     // probation: the new champion did worse than the previous one
	DecisionPromoted       = "promoted"        // an operator moved the alias (driftline models promote)
	DecisionRollback       = "rollback"        // an operator rolled back (driftline models rollback)
)

// AliasMoveKey is the registry key of the seq-th move (1, 2, ...) of an
// alias. Every move has its own key, so compaction keeps the whole history
// of every alias; its latest position is its move with the highest offset.
func AliasMoveKey(model, alias string, seq int) string {
	return AliasKey(model, alias) + "#" + strconv.Itoa(seq)
}

// RegistryRecord is one record of driftline.models, the event-sourced model
// registry. Keys: "<model>/v<version>" for versions, "<model>@<alias>" for
// alias moves, so compaction keeps every version and the latest of each
// alias.
type RegistryRecord struct {
	Kind    string        `json:"kind"`
	Version *ModelVersion `json:"version,omitempty"`
	Alias   *AliasMove    `json:"alias,omitempty"`
}

// VersionKey is the registry key of a model version.
func VersionKey(model string, version int) string {
	return model + "/v" + strconv.Itoa(version)
}

// AliasKey is the registry key of an alias of a model.
func AliasKey(model, alias string) string { return model + "@" + alias }

// AliasMove points an alias of a model at a version.
type AliasMove struct {
	Model    string    `json:"model"`
	Alias    string    `json:"alias"`
	Version  int       `json:"version"`
	Previous int       `json:"previous"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// Seq numbers the moves of this alias from 1 (0 on records written
	// before alias history, keyed AliasKey).
	Seq int `json:"seq,omitempty"`
	// Decision is what moved the alias (Decision* constants), Evidence the
	// figures it was decided on (e.g. "shadow_auc", "champion_auc",
	// "labels").
	Decision string             `json:"decision,omitempty"`
	Evidence map[string]float64 `json:"evidence,omitempty"`
	// Owner and RetrainOf are set on reservations (AliasReserved): the
	// reservation's unique id (trainer replica and attempt) and the
	// idempotency key of the retrain request the number is reserved for.
	Owner     string `json:"owner,omitempty"`
	RetrainOf string `json:"retrain_of,omitempty"`
}

// ModelVersion is a trained model with everything needed to serve, monitor
// and reproduce it.
type ModelVersion struct {
	Model     string    `json:"model"`
	Version   int       `json:"version"`
	Parent    int       `json:"parent"` // champion it was trained to replace; 0 for bootstrap
	CreatedAt time.Time `json:"created_at"`
	Backend   string    `json:"backend"` // e.g. "cpu-go-logreg"
	Features  []string  `json:"features"`

	// Logistic regression on standardised inputs:
	// score = sigmoid(Bias + sum_i Weights[i] * (x[i]-Mean[i])/Std[i]).
	Weights []float64 `json:"weights"`
	Bias    float64   `json:"bias"`
	Mean    []float64 `json:"mean"`
	Std     []float64 `json:"std"`
	L2      float64   `json:"l2"`

	Reference Profile      `json:"reference"`
	Metrics   ModelMetrics `json:"metrics"`
	Training  Window       `json:"training_window"`
	Rows      int          `json:"rows"`
	RetrainOf string       `json:"retrain_of,omitempty"` // idempotency key of the request

	// Hyperparameters the backend trained with (e.g. "l2",
	// "holdout_fraction", "min_gain"; a GPU backend adds its own).
	Hyperparameters map[string]float64 `json:"hyperparameters,omitempty"`
	// Dataset identifies the training set, so `driftline train` can
	// reproduce the version from it.
	Dataset *Dataset `json:"dataset,omitempty"`
}

// Dataset is the fingerprint of a training set: its size, event-time range
// and a content hash over the rows in training order (see
// trainers.Fingerprint for the exact bytes hashed).
type Dataset struct {
	Rows   int       `json:"rows"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	SHA256 string    `json:"sha256"`
	// Source says where the rows came from: "labels-topic", "file:<name>",
	// "clickhouse".
	Source string `json:"source,omitempty"`
}

// ModelMetrics are a version's scores on the held-out slice at training
// time, beside the champion's on the same slice.
type ModelMetrics struct {
	AUC             float64 `json:"auc"`
	LogLoss         float64 `json:"log_loss"`
	ChampionAUC     float64 `json:"champion_auc,omitempty"`
	ChampionLogLoss float64 `json:"champion_log_loss,omitempty"`
	HoldoutRows     int     `json:"holdout_rows"`
	GatePassed      bool    `json:"gate_passed"`
	GateReason      string  `json:"gate_reason"`
}

// Profile is a reference distribution per feature (and for the score), built
// from a training set and stored with the model version.
type Profile struct {
	Rows     int              `json:"rows"`
	Features []FeatureProfile `json:"features"`
	Score    FeatureProfile   `json:"score"`
	// Segments are the same profile over the training rows of each
	// segment with enough rows; optional (a monitor without one for a
	// segment takes that segment's first window after the version went
	// live as its reference).
	Segments []SegmentProfile `json:"segments,omitempty"`
}

// SegmentProfile is the reference profile of one segment of the training
// set, Segment naming it as dimension=value ("device=mobile").
type SegmentProfile struct {
	Segment  string           `json:"segment"`
	Rows     int              `json:"rows"`
	Features []FeatureProfile `json:"features"`
	Score    FeatureProfile   `json:"score"`
}

// FeatureProfile is a binned distribution: Edges are the n-1 inner cut
// points of n bins (bin i holds Edges[i-1] < x <= Edges[i]), Fractions the
// share of rows in each bin.
//
// Profiles written since issue 4 also carry what the online drift
// statistics need; all of it is optional, and a profile without it (an
// older registry record) is monitored by PSI on its bins alone.
type FeatureProfile struct {
	Name      string    `json:"name"`
	Edges     []float64 `json:"edges"`
	Fractions []float64 `json:"fractions"`
	// Distinct is the number of distinct finite values in the training set,
	// counted up to max(bins, 5) + 1: at most the bin count means the
	// bins are one per value, a frequency table.
	Distinct int `json:"distinct,omitempty"`
	// Rows is the number of values profiled.
	Rows int `json:"rows,omitempty"`
	// Mean and Std (population) of the finite values.
	Mean float64 `json:"mean,omitempty"`
	Std  float64 `json:"std,omitempty"`
	// Sketch is a quantile sketch of the values (numeric features with more
	// distinct values than bins).
	Sketch *Sketch `json:"sketch,omitempty"`
}

// Sketch is a DDSketch (Masson, Rim and Lee, VLDB 2019; the DataDog
// sketches-go layout) in a compact JSON form: an index mapping of the
// given relative accuracy, the count of values too close to zero to
// index, and dense bucket counts of the positive values and of the
// magnitudes of the negative ones, Counts[i] holding bucket Offset+i.
type Sketch struct {
	// Mapping is the index mapping: "cubic" (sketches-go's
	// CubicallyInterpolatedMapping, no logarithm per value) or
	// "logarithmic" (LogarithmicMapping; also when empty).
	Mapping          string     `json:"mapping,omitempty"`
	RelativeAccuracy float64    `json:"relative_accuracy"`
	Zero             float64    `json:"zero,omitempty"`
	Positive         SketchBins `json:"positive"`
	Negative         SketchBins `json:"negative"`
	// Min and Max are the smallest and largest value sketched (absent in
	// records written before session 9): the reference CDF is 0 below Min
	// and 1 from Max on, also inside the buckets that hold them.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Values are the sketched values themselves, sorted, when there are
	// few enough of them (internal/profile.MaxExactValues, a reference
	// small enough to be judged by KS): the monitor's KS is then exact.
	Values []float64 `json:"values,omitempty"`
}

// SketchBins are consecutive DDSketch buckets.
type SketchBins struct {
	Offset int       `json:"offset"`
	Counts []float64 `json:"counts"`
}

// Dead-letter record headers. The record's key and value are the original
// bytes, unchanged; these headers say where it came from and why it was
// rejected (the convention of Kafka Connect's DLQ).
const (
	HeaderReason          = "driftline.reason"
	HeaderField           = "driftline.field"
	HeaderSourceTopic     = "driftline.source.topic"
	HeaderSourcePartition = "driftline.source.partition"
	HeaderSourceOffset    = "driftline.source.offset"
	// On a value cut to the DLQ's size limit: the original length and
	// the hex SHA-256 of the original bytes.
	HeaderOriginalBytes  = "driftline.original.bytes"
	HeaderOriginalSHA256 = "driftline.original.sha256"
)
