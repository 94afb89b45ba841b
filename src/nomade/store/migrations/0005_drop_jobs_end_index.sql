-- 0005: the jobs (cluster, end_time) index served no query (history features are computed from a
-- full read of the jobs table, nomade jobs filters on submit time); every ingest paid to keep it.

DROP INDEX IF EXISTS jobs_end;
