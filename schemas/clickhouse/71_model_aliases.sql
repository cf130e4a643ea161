-- Alias moves from the registry topic (schemas.AliasMove): every time an
-- alias (champion) of a model moved, keyed by what identifies the move.
-- owner and retrain_of are set on version-number reservations (alias
-- reserved) only.
CREATE TABLE IF NOT EXISTS {database}.model_aliases (
    model String,
    alias String,
    version UInt32,
    previous UInt32,
    reason String,
    at DateTime,
    at_ms UInt64,
    seq UInt32,
    decision String,
    evidence_keys Array(String),
    evidence_values Array(Float64),
    owner String,
    retrain_of String
) ENGINE = ReplacingMergeTree
ORDER BY (model, alias, at_ms, version)
