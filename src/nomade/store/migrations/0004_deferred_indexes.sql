-- 0004: secondary indexes a bulk load set aside (nomade.store.bulk): it drops them before loading
-- and builds them again at its end; if it died meanwhile, the next writer that opens the store
-- builds them. One row per index, with the statement that creates it and the loader's identity.

CREATE TABLE deferred_indexes (
    name        TEXT PRIMARY KEY,
    sql         TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    deferred_at REAL NOT NULL
);
