// Package schemas is the storefront contract and the shape of every record
// Driftline writes: event types, their JSON Schema files (jsonschema/), strict
// validation with field-path reasons, and the records of the output topics
// (features, predictions, labels, alerts, retrain requests, model versions,
// dead letters).
//
// It is the ground floor: it imports nothing of ours, and every other package
// may import it. It holds data and the rules about data, never I/O.
package schemas
