-- 0007: what each step used, as sacct reports it, for efficiency numbers (nomade.efficiency):
-- the step's task count, and its TRES usage fields as printed (TRESUsageInTot: summed over the
-- step's tasks; TRESUsageInMax: the largest task). NULL = the dump did not have the field.

ALTER TABLE job_steps ADD COLUMN ntasks INTEGER;
ALTER TABLE job_steps ADD COLUMN tres_usage_in_tot TEXT;
ALTER TABLE job_steps ADD COLUMN tres_usage_in_max TEXT;
