-- 0009: the alert engine (nomade.store.alerts, docs/alerts.md).
-- alerts: one row per occurrence of a fingerprint (rule + labels); the open one (resolved_at
-- NULL) carries the state: pending, firing, nodata or error. Notifications go through an outbox
-- (alert_deliveries): written in the same transaction as the state change, then sent, so a
-- restart neither re-sends what was delivered nor forgets what was not.

CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    cluster       TEXT NOT NULL,
    severity      TEXT NOT NULL,
    state         TEXT NOT NULL,          -- pending, firing, nodata, error, resolved
    labels        TEXT NOT NULL,          -- canonical JSON
    value         REAL,
    summary       TEXT NOT NULL,
    description   TEXT NOT NULL,
    owner         TEXT,                   -- the job's user, for alerts about one job
    started_at    REAL NOT NULL,          -- the condition first held
    fired_at      REAL,
    resolved_at   REAL,
    updated_at    REAL NOT NULL,
    last_sent_at  REAL,                   -- the last notification queued for it
    last_sent_status TEXT,
    acked_at      REAL,
    acked_until   REAL,                   -- NULL with acked_at set: until resolved
    acked_by      TEXT,
    ack_note      TEXT
);
CREATE INDEX alerts_open ON alerts (fingerprint, resolved_at);
CREATE INDEX alerts_rule ON alerts (rule, cluster);

CREATE TABLE alert_silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers    TEXT NOT NULL,            -- JSON {label: value}
    starts_at   REAL NOT NULL,
    ends_at     REAL NOT NULL,
    created_by  TEXT NOT NULL,
    note        TEXT NOT NULL
);

CREATE TABLE alert_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    payload     TEXT NOT NULL,            -- JSON of the group, so it can be sent again
    ok          INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,   -- delivered, or given up
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    next_try    REAL NOT NULL,
    sent_at     REAL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (done, next_try);
