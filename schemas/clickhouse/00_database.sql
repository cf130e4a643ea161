-- The database every Driftline table lives in; {database} is replaced by the
-- sink's configured name (default driftline).
CREATE DATABASE IF NOT EXISTS {database}
