package main

import (
	"fmt"
	"os"

	"github.com/driftline/driftline/consumers"
)

// kafkaConfig is the Kafka client configuration of the commands that talk
// to a cluster besides `run` (simulate, models, train): the seed brokers
// from --brokers and the security settings from the DRIFTLINE_KAFKA_*
// environment, as `run` reads them, so every command reaches a secured
// cluster the same way.
func kafkaConfig(brokers string) (consumers.KafkaConfig, error) {
	kcfg := consumers.KafkaConfig{Brokers: consumers.ParseBrokers(brokers)}
	if err := kcfg.Security.FromEnv(os.Getenv); err != nil {
		return kcfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	kcfg.SetDefaults()
	return kcfg, nil
}
