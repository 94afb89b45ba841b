-- 0011: nomade-why's and the dashboard's "similar past jobs" select one owner's jobs by uid
-- (store.job_queries.owner_ended_jobs, owner_submits_between); without this index each lookup
-- scanned the cluster's jobs (0.4-0.55 s of the dashboard's Job page with 1M jobs, 14 ms with it).
CREATE INDEX jobs_owner_submit ON jobs (cluster, uid, submit_time);
