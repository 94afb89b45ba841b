-- 0002: node recorder. Per-job summaries of the samples table, and early-warning events.
-- Both are rebuilt/filled by `nomade ingest spool`; loading the same spool twice changes nothing.

CREATE TABLE job_summaries (
    cluster             TEXT NOT NULL,
    job_id              TEXT NOT NULL,
    sample_count        INTEGER NOT NULL,
    nodes               INTEGER NOT NULL,   -- distinct nodes that sent samples
    first_ts            REAL,
    last_ts             REAL,
    peak_rss_mb         REAL,               -- max over samples (one sample = one job on one node)
    peak_cg_mem_mb      REAL,
    cg_mem_limit_mb     REAL,
    mean_cpu_eff        REAL,               -- mean of per-sample CPU efficiency (0..1, can exceed 1 briefly)
    cpu_time_s          REAL,               -- sum over nodes of the last cumulative CPU time
    read_bytes          INTEGER,            -- sum over nodes of the last cumulative rchar
    write_bytes         INTEGER,            -- sum over nodes of the last cumulative wchar
    write_local_bytes   INTEGER,            -- attributed to local disk (see docs/recorder.md)
    write_network_bytes INTEGER,            -- attributed to NFS/Lustre/GPFS/...
    write_tmpfs_bytes   INTEGER,            -- attributed to tmpfs (/dev/shm, RAM-backed /tmp)
    peak_write_rate     REAL,               -- bytes/s, max between consecutive samples of one node
    peak_gpu_mem_mb     REAL,
    mean_gpu_util       REAL,
    updated_at          REAL NOT NULL,
    PRIMARY KEY (cluster, job_id)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster     TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    node        TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,          -- 'memory_projection', 'series_risk', ...
    created_at  REAL NOT NULL,          -- when the recorder raised it (epoch s)
    detail      TEXT,                   -- JSON: value, rate, acceleration, limit, time to limit, ...
    notified    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (cluster, job_id, node, kind)
);
CREATE INDEX events_job ON events (cluster, job_id);
