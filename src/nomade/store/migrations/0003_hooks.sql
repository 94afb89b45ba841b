-- 0003: Slurm integration. Records written by the Prolog/Epilog/MailProg hooks (loaded from the
-- hook spool by `nomade ingest hooks`; loading the same spool twice changes nothing).

CREATE TABLE hook_records (
    cluster     TEXT NOT NULL,          -- '' when the hook did not know it
    job_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- 'start' (Prolog), 'end' (Epilog), 'mail' (MailProg)
    node        TEXT NOT NULL,          -- SLURMD_NODENAME, '' for controller-side records
    written_at  REAL NOT NULL,
    data        TEXT NOT NULL,          -- the spool record, JSON
    loaded_at   REAL NOT NULL,
    PRIMARY KEY (cluster, job_id, kind, node)
);
CREATE INDEX hook_records_job ON hook_records (job_id);
