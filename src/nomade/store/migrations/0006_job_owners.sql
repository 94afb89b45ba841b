-- 0006: each (cluster, user, uid) pair sacct ingestion has accepted. A new job row whose user name
-- has another uid here, or whose uid has another user name, contradicts the store (a forged or
-- corrupt row) and is quarantined (nomade.store.jobs.check_owners); the stored jobs are kept.

CREATE TABLE job_owners (
    cluster     TEXT NOT NULL,
    user        TEXT NOT NULL,
    uid         INTEGER NOT NULL,
    PRIMARY KEY (cluster, user, uid)
);

INSERT OR IGNORE INTO job_owners (cluster, user, uid)
    SELECT cluster, user, uid FROM jobs
    WHERE user IS NOT NULL AND uid IS NOT NULL
    GROUP BY cluster, user, uid;
