-- 0008: the monitoring engine's time series (nomade.store.metrics, docs/monitoring.md).
-- A series is one (cluster, host, source, metric, labels); labels are canonical JSON text (keys
-- sorted, compact). Raw samples are kept monitoring.raw_days; hourly averages (with min, max and
-- count) monitoring.rollup_days. collector_runs: one row per collector run (ok or not).

CREATE TABLE metric_series (
    id      INTEGER PRIMARY KEY,
    cluster TEXT NOT NULL,
    host    TEXT NOT NULL,
    source  TEXT NOT NULL,
    metric  TEXT NOT NULL,
    labels  TEXT NOT NULL,
    UNIQUE (cluster, metric, host, labels, source)
);

CREATE TABLE metric_samples (
    series_id INTEGER NOT NULL REFERENCES metric_series(id),
    ts        REAL NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

CREATE TABLE metric_hourly (
    series_id INTEGER NOT NULL REFERENCES metric_series(id),
    hour      INTEGER NOT NULL,          -- epoch seconds at the start of the hour
    avg       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (series_id, hour)
) WITHOUT ROWID;

CREATE TABLE collector_runs (
    name       TEXT NOT NULL,
    ts         REAL NOT NULL,
    ok         INTEGER NOT NULL,
    message    TEXT NOT NULL,
    duration_s REAL NOT NULL,
    n_metrics  INTEGER NOT NULL
);
CREATE INDEX collector_runs_name_ts ON collector_runs (name, ts);
