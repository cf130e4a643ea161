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
	AlertAccuracy        = "accuracy"
)

// Alert is published to driftline.alerts when a monitor's threshold is
// breached. Subscribers (on-call, ML engineers) read it as documented in the
// README.
type Alert struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Severity  string    `json:"severity"`
	Model     string    `json:"model"`
	Version   int       `json:"version"`
	Feature   string    `json:"feature,omitempty"`
	Statistic string    `json:"statistic"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Window    Window    `json:"window"`
	Samples   int       `json:"samples"`
	EventTime time.Time `json:"event_time"` // event time of the evaluation that breached
	FiredAt   time.Time `json:"fired_at"`   // wall time
}

// Window is an event-time range.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// RetrainRequest is published to driftline.retrain. Trainers handle each
// IdempotencyKey once however often it is delivered.
type RetrainRequest struct {
	IdempotencyKey string    `json:"idempotency_key"`
	Model          string    `json:"model"`
	FromVersion    int       `json:"from_version"` // champion at the time; 0 for bootstrap
	Reason         string    `json:"reason"`
	Alerts         []string  `json:"alerts,omitempty"`
	DataFrom       time.Time `json:"data_from"` // train on labelled vectors with event time >= this
	RequestedAt    time.Time `json:"requested_at"`
}

// Registry record kinds on driftline.models.
const (
	RegistryVersion = "version"
	RegistryAlias   = "alias"
)

// AliasChampion is the alias every scorer serves.
const AliasChampion = "champion"

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
}

// FeatureProfile is a binned distribution: Edges are the n-1 inner cut
// points of n bins (bin i holds Edges[i-1] < x <= Edges[i]), Fractions the
// share of rows in each bin.
type FeatureProfile struct {
	Name      string    `json:"name"`
	Edges     []float64 `json:"edges"`
	Fractions []float64 `json:"fractions"`
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
