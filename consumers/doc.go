// Package consumers is Driftline's Kafka I/O on franz-go: client options,
// topic provisioning, the embedded broker used by the demo and tests, the
// dead-letter records, and the registry tail every stage reads models from.
// The Watermill Publisher/Subscriber lives in the kpubsub subpackage.
//
// It stands on schemas and nothing else of ours. It moves records; it never
// decides what a record means (that is the stages' job).
package consumers
