// Package chsink is the sink role: it reads every topic Driftline writes
// (storefront events, features, predictions, labels, alerts, retrain
// requests, the model registry, dead letters) and writes them into the
// ClickHouse tables whose DDL lives in schemas/clickhouse.
//
// Delivery: rows are batched per table by size (Config.BatchRows) and time
// (Config.BatchInterval); Kafka offsets are committed only after ClickHouse
// acknowledged every batch that holds their records. Two batches exist: the
// poll loop fills one while a writer goroutine sends the other (its tables
// concurrently) and then commits the offsets it carries; batches are
// written in order. While ClickHouse fails, the writer retries the same
// batch with capped exponential backoff, forever, and the poll loop stops
// fetching once its own batch is due: consumer lag grows, memory stays
// bounded, nothing is dropped. A crash or a redelivery writes some rows
// twice; every table is a ReplacingMergeTree keyed by the record's stable
// id (event_id, or the record's own id), so queries read with FINAL (or
// argMax) and see each record once.
//
// Storefront records that fail the contract are not dead-lettered here: the
// feature stage owns the contract and dead-letters them (counted as
// driftline_sink_skipped_total{reason="invalid"}). A derived record the sink
// cannot decode goes to the DLQ with the reason.
//
// It stands on consumers and schemas. ClickHouse is spoken over the native
// protocol only, with explicit column lists on every INSERT (see
// ../shared/CLICKHOUSE.md for why).
package chsink
