-- 0010: every promotion of a bundle, kept (models.promoted_at is only the latest one), so the
-- bundle that was current at any moment is known: the submit-stage score a job received is
-- recorded with the bundle that was current at its submit time (nomade.production).
CREATE TABLE model_promotions (
    version     TEXT NOT NULL,
    promoted_at REAL NOT NULL,
    PRIMARY KEY (version, promoted_at)
);
INSERT INTO model_promotions (version, promoted_at)
    SELECT version, promoted_at FROM models WHERE promoted_at IS NOT NULL;
