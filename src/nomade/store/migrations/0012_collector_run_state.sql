-- 0012: a collector run's state: 'ok', 'skipped' (its source is absent here: no driver, no
-- mount, no tool) or 'failed' (an error). Older rows have NULL: read as ok / failed from `ok`.
ALTER TABLE collector_runs ADD COLUMN state TEXT;
