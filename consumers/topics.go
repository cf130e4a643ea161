package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/driftline/driftline/schemas"
)

// Topics names every topic Driftline reads or writes. The zero value is not
// usable; start from DefaultTopics and override.
type Topics struct {
	Clickstream  string `yaml:"clickstream"`
	Cart         string `yaml:"cart"`
	Transactions string `yaml:"transactions"`
	Features     string `yaml:"features"`
	Predictions  string `yaml:"predictions"`
	Labels       string `yaml:"labels"`
	Windows      string `yaml:"windows"`
	Alerts       string `yaml:"alerts"`
	Reports      string `yaml:"reports"`
	Retrain      string `yaml:"retrain"`
	Models       string `yaml:"models"`
	DLQ          string `yaml:"dlq"`
}

// DefaultTopics returns the topic names of DESIGN.md.
func DefaultTopics() Topics {
	return Topics{
		Clickstream:  schemas.TopicClickstream,
		Cart:         schemas.TopicCart,
		Transactions: schemas.TopicTransactions,
		Features:     schemas.TopicFeatures,
		Predictions:  schemas.TopicPredictions,
		Labels:       schemas.TopicLabels,
		Windows:      schemas.TopicWindows,
		Alerts:       schemas.TopicAlerts,
		Reports:      schemas.TopicReports,
		Retrain:      schemas.TopicRetrain,
		Models:       schemas.TopicModels,
		DLQ:          schemas.TopicDLQ,
	}
}

// Inputs are the storefront topics producers write to.
func (t Topics) Inputs() []string { return []string{t.Clickstream, t.Cart, t.Transactions} }

// ForType returns the input topic a storefront event type belongs on, or ""
// for an unknown type.
func (t Topics) ForType(eventType string) string {
	switch schemas.TopicOf(eventType) {
	case schemas.TopicClickstream:
		return t.Clickstream
	case schemas.TopicCart:
		return t.Cart
	case schemas.TopicTransactions:
		return t.Transactions
	}
	return ""
}

// RetrainPoison is where trainers put retrain requests they could not handle
// after every retry.
func (t Topics) RetrainPoison() string { return t.Retrain + ".poison" }

// Validate reports an empty topic name.
func (t Topics) Validate() error {
	for name, v := range map[string]string{
		"clickstream": t.Clickstream, "cart": t.Cart, "transactions": t.Transactions,
		"features": t.Features, "predictions": t.Predictions, "labels": t.Labels, "windows": t.Windows,
		"alerts": t.Alerts, "reports": t.Reports, "retrain": t.Retrain, "models": t.Models, "dlq": t.DLQ,
	} {
		if v == "" {
			return fmt.Errorf("topic %s: name must not be empty", name)
		}
	}
	return nil
}

// TopicSpec is a topic to provision.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

// Specs returns every topic with its partition count and configs: data
// topics get `partitions` partitions (partitioned by user id); the registry
// is one compacted partition so every reader sees versions and alias moves
// in the order they were written; control topics get one partition each;
// the state changelog of the default feature group is compacted and
// partitioned like the inputs (a stage with another group creates its own
// at start, see ChangelogSpec).
func (t Topics) Specs(partitions int32) []TopicSpec {
	compact := "compact"
	one := func(name string) TopicSpec { return TopicSpec{Name: name, Partitions: 1} }
	data := func(name string) TopicSpec { return TopicSpec{Name: name, Partitions: partitions} }
	return []TopicSpec{
		data(t.Clickstream), data(t.Cart), data(t.Transactions),
		data(t.Features), data(t.Predictions), data(t.Labels), data(t.Windows), data(t.DLQ),
		one(t.Alerts), one(t.Reports), one(t.Retrain), one(t.RetrainPoison()),
		{Name: t.Models, Partitions: 1, Configs: map[string]*string{"cleanup.policy": &compact}},
		ChangelogSpec(DefaultFeaturesGroup, partitions),
	}
}

// Provision creates every missing topic of specs. Existing topics are left
// as they are (their partition count is not changed), so it is safe to call
// at every start.
func Provision(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	for _, s := range specs {
		resp, err := adm.CreateTopic(ctx, s.Partitions, -1, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", s.Name, err)
		}
	}
	return nil
}
