-- 0001: jobs, steps, samples, scores, model registry, quarantine, ingest high-water marks.
-- Times are UNIX epoch seconds (UTC). Memory in MiB. Durations in seconds. NULL = unknown.

CREATE TABLE jobs (
    cluster         TEXT NOT NULL,
    job_id          TEXT NOT NULL,      -- as Slurm prints it: '123', '123_4', '123+0'
    job_id_raw      INTEGER,            -- JobIDRaw: the unique numeric id
    array_job_id    INTEGER,
    array_task_id   TEXT,               -- '4', or '[5-9]' for a pending array range
    het_job_id      INTEGER,
    het_offset      INTEGER,
    name            TEXT,
    user            TEXT,
    uid             INTEGER,
    grp             TEXT,
    account         TEXT,
    partition       TEXT,
    qos             TEXT,
    -- submit-time request
    submit_time     REAL,
    eligible_time   REAL,
    req_cpus        INTEGER,
    req_nodes       INTEGER,
    req_mem_mb      REAL,               -- per node, or per CPU when req_mem_per_cpu = 1
    req_mem_per_cpu INTEGER,
    timelimit_s     INTEGER,            -- NULL with timelimit_raw 'UNLIMITED'/'Partition_Limit'/...
    timelimit_raw   TEXT,
    req_gpus        INTEGER,
    req_tres        TEXT,
    work_dir        TEXT,
    submit_line     TEXT,
    -- outcome
    state           TEXT,               -- COMPLETED, FAILED, ..., PENDING, RUNNING
    state_raw       TEXT,               -- as printed, e.g. 'CANCELLED by 1234'
    cancelled_by    INTEGER,            -- uid from 'CANCELLED by N'
    is_final        INTEGER NOT NULL DEFAULT 0,
    exit_code       INTEGER,
    exit_signal     INTEGER,
    derived_exit_code INTEGER,
    derived_exit_signal INTEGER,
    start_time      REAL,
    end_time        REAL,
    elapsed_s       INTEGER,
    -- allocation and resource use (use aggregated from step rows)
    alloc_cpus      INTEGER,
    alloc_nodes     INTEGER,
    node_list       TEXT,
    alloc_tres      TEXT,
    total_cpu_s     REAL,
    max_rss_mb      REAL,
    -- bookkeeping
    source          TEXT NOT NULL,      -- 'sacct', 'sacct-json', 'swf:<trace>', 'spool'
    record_hash     TEXT,
    ingested_at     REAL NOT NULL,
    updated_at      REAL NOT NULL,
    PRIMARY KEY (cluster, job_id)
);
CREATE INDEX jobs_user_submit ON jobs (cluster, user, submit_time);
CREATE INDEX jobs_submit ON jobs (cluster, submit_time);
CREATE INDEX jobs_end ON jobs (cluster, end_time);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE job_steps (
    cluster         TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    step_id         TEXT NOT NULL,      -- 'batch', 'extern', '0', '1', ...
    name            TEXT,
    state           TEXT,
    state_raw       TEXT,
    exit_code       INTEGER,
    exit_signal     INTEGER,
    start_time      REAL,
    end_time        REAL,
    elapsed_s       INTEGER,
    alloc_cpus      INTEGER,
    alloc_tres      TEXT,
    node_list       TEXT,
    max_rss_mb      REAL,
    total_cpu_s     REAL,
    PRIMARY KEY (cluster, job_id, step_id)
);

CREATE TABLE samples (
    cluster         TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    node            TEXT NOT NULL,
    ts              REAL NOT NULL,
    cpu_time_s      REAL,
    cpu_eff         REAL,
    rss_mb          REAL,
    cg_mem_mb       REAL,
    cg_mem_limit_mb REAL,
    read_bytes      INTEGER,
    write_bytes     INTEGER,
    write_local_bytes   INTEGER,
    write_network_bytes INTEGER,
    gpu_util        REAL,
    gpu_mem_mb      REAL,
    extra           TEXT,               -- JSON for anything else
    PRIMARY KEY (cluster, job_id, node, ts)
);

CREATE TABLE scores (
    cluster         TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    stage           TEXT NOT NULL,      -- 'submit', 'start', 'running'
    model_version   TEXT NOT NULL,
    risk            REAL NOT NULL,
    level           TEXT,
    reasons         TEXT,               -- JSON
    scored_at       REAL NOT NULL,
    PRIMARY KEY (cluster, job_id, stage, model_version)
);

CREATE TABLE models (
    version         TEXT PRIMARY KEY,
    path            TEXT NOT NULL,
    status          TEXT NOT NULL,      -- 'candidate', 'current', 'retired'
    created_at      REAL NOT NULL,
    promoted_at     REAL,
    manifest        TEXT NOT NULL       -- JSON copy of manifest.json
);

CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT NOT NULL,      -- e.g. 'sacct-file:/path', 'swf:trace'
    location        TEXT,               -- e.g. 'line 42'
    reason          TEXT NOT NULL,
    raw             TEXT NOT NULL,
    raw_hash        TEXT NOT NULL,
    created_at      REAL NOT NULL,
    UNIQUE (source, raw_hash)
);

CREATE TABLE ingest_state (
    source          TEXT PRIMARY KEY,   -- e.g. 'sacct:<cluster>'
    high_water      REAL,               -- newest change time seen (epoch s)
    updated_at      REAL NOT NULL
);
