// Package schemas is the storefront contract and the shape of every record
// Driftline writes: event types, their JSON Schema files (jsonschema/), strict
// validation with field-path reasons, and the records of the output topics
// (features, predictions, labels, alerts, retrain requests, model versions,
// dead letters).
//
// It is the ground floor: it imports nothing of ours, and every other package
// may import it. It holds data and the rules about data, never I/O.
//
// # The storefront contract
//
// A consumer reads each input record with a Decoder (one per goroutine):
// size limit, JSON, the rules of Event.Validate, and the topic check. A
// rejection is a *ValidationError whose Field and Reason go into the
// driftline.field and driftline.reason headers of the dead letter, e.g.
// "price: must be >= 0, got -3". Producers in Go build events with NewEvent
// and write them with Event.AppendJSON.
//
// Where DESIGN.md is silent, these are the decisions, and the JSON Schema
// files state the same (a test runs the corpus under testdata/contract, and
// thousands of mutations of it, through both and requires them to agree):
//
//   - A field set to null is the same as an absent field; an optional string
//     set to "" is absent too. A required id that is "" is rejected as too
//     short, one that is absent as required.
//   - Field names are case-sensitive: "Price" is an unknown field, ignored.
//   - Integers are numbers without a fraction, however written (2, 2.0, 2e0),
//     up to 2^53-1; other numbers must fit a float64.
//   - Optional free-text fields (device, country, referrer, page, query,
//     category) are at most 256 characters; product_id and order_id, like
//     the other ids, at most 128. Lengths count characters, not bytes.
//   - ts is YYYY-MM-DDTHH:MM:SS[.fraction] with Z or ±HH:MM, "T" and "Z"
//     upper case, no leap second (Go's time.RFC3339 reads it the same way).
//   - currency has the shape of an ISO 4217 code (three upper-case letters);
//     whether the code is assigned is not checked.
//   - price, cart_value, amount, quantity and items are checked wherever they
//     appear, not only on the types that require them.
//   - The first broken rule is reported, schema_version first; a record that
//     breaks the rules and is also on the wrong topic reports the rule.
//   - Only the Decoder sees the size limit and bytes that are not UTF-8; the
//     per-topic schemas see everything else, a wrong topic included (each
//     allows only its topic's types).
package schemas
