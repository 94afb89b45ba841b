/* The store writer of nomade.slurm._sacct_scan: jobs and their steps bound straight from C values
 * into SQLite, on a connection of its own, in batches with ingest_text's rules (included by
 * _sacct_scan.c after values.h). The statements come from nomade.store.jobs (c_writer). */
#ifndef NOMADE_SACCT_STORE_WRITER_H
#define NOMADE_SACCT_STORE_WRITER_H
#include <dlfcn.h>
#ifndef RTLD_NOLOAD   /* a GNU and macOS extension; elsewhere the module is loaded already anyway */
#define RTLD_NOLOAD 0
#endif

/* The SQLite functions are taken from the library Python's own sqlite3 module has loaded (never
 * a second copy: two copies of SQLite in one process break each other's file locks). */
#define SQ_OK 0
#define SQ_CONSTRAINT 19
#define SQ_ROW 100
#define SQ_DONE 101
#define SQ_OPEN_READWRITE 0x2
#define SQ_OPEN_NOMUTEX 0x8000   /* one thread (under the GIL) uses this connection */
#define SQ_NULLTYPE 5
#define SQ_STATIC ((void (*)(void *))0)

static struct {
    int (*open_v2)(const char *, void **, int, const char *);
    int (*close)(void *);
    int (*exec)(void *, const char *, void *, void *, char **);
    int (*prepare_v2)(void *, const char *, int, void **, const char **);
    int (*finalize)(void *);
    int (*reset)(void *);
    int (*step)(void *);
    int (*bind_int64)(void *, int, long long);
    int (*bind_double)(void *, int, double);
    int (*bind_text)(void *, int, const char *, int, void (*)(void *));
    int (*bind_null)(void *, int);
    int (*bind_parameter_count)(void *);
    const unsigned char *(*column_text)(void *, int);
    int (*column_bytes)(void *, int);
    long long (*column_int64)(void *, int);
    int (*column_type)(void *, int);
    const char *(*errmsg)(void *);
    int (*busy_timeout)(void *, int);
    int (*libversion_number)(void);
} SQ;
static int sq_loaded = 0;

static PyObject *WriteError;   /* _sacct_scan.WriteError */

static int load_sqlite(PyObject *lib) {
    if (sq_loaded) return 1;
    const char *path = NULL;
    if (lib != Py_None) {
        path = PyUnicode_AsUTF8(lib);
        if (path == NULL) return 0;
    }
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : dlopen(NULL, RTLD_NOW);
    if (h == NULL) {
        PyErr_Format(PyExc_ImportError, "the sqlite3 module's library is not loaded: %s", path ? path : "(program)");
        return 0;
    }
    static const char *names[] = {
        "sqlite3_open_v2", "sqlite3_close", "sqlite3_exec", "sqlite3_prepare_v2", "sqlite3_finalize",
        "sqlite3_reset", "sqlite3_step", "sqlite3_bind_int64", "sqlite3_bind_double",
        "sqlite3_bind_text", "sqlite3_bind_null", "sqlite3_bind_parameter_count",
        "sqlite3_column_text", "sqlite3_column_bytes", "sqlite3_column_int64", "sqlite3_column_type",
        "sqlite3_errmsg", "sqlite3_busy_timeout", "sqlite3_libversion_number"};
    void **slots = (void **)&SQ;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        slots[k] = dlsym(h, names[k]);
        if (slots[k] == NULL) {
            PyErr_Format(PyExc_ImportError, "%s not found in the sqlite3 module's library", names[k]);
            return 0;
        }
    }
    sq_loaded = 1;
    return 1;
}

enum { ST_SELECT, ST_INSERT_JOB, ST_UPSERT_JOB, ST_DELETE_STEPS, ST_INSERT_STEP, ST_REPLACE_STEP, NST };
/* the select binds the row's first 10 values: the key (?1, ?2), user (?9) and uid (?10) */
static const int st_params[NST] = {J_UID + 1, NROW, NROW, 2, NSTEP, NSTEP};

/* a job waiting in the batch: its row (NROW Vals) and steps (NSTEP each) in w->vals */
typedef struct { Py_ssize_t row_at, steps_at, nsteps; uint64_t h; int write; } Entry;

typedef struct {
    PyObject_HEAD
    void *db;
    void *st[NST];
    Py_ssize_t batch;
    Buf text, vals, entries, last, key;
    Py_ssize_t *map, map_cap, count;
    int has_last;
    long long n_new, n_updated, n_unchanged, n_jobs;
    PyObject *conflicts;   /* jobs not written: their owner differs from the stored one */
} Writer;

static PyTypeObject WriterType;

static int w_error(Writer *w, const char *what) {
    PyErr_Format(WriteError, "%s: %s", what, w->db ? SQ.errmsg(w->db) : "no connection");
    return 0;
}

static void w_close(Writer *w) {
    for (int k = 0; k < NST; k++) if (w->st[k]) { SQ.finalize(w->st[k]); w->st[k] = NULL; }
    if (w->db) { SQ.close(w->db); w->db = NULL; }
    buf_free(&w->text); buf_free(&w->vals); buf_free(&w->entries); buf_free(&w->last); buf_free(&w->key);
    PyMem_Free(w->map); w->map = NULL; w->map_cap = 0; w->count = 0;
    Py_CLEAR(w->conflicts);
}

static void w_dealloc(Writer *w) {
    w_close(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static int bind_vals(void *st, const Val *v, int n, const char *T) {
    for (int k = 0; k < n; k++) {
        int rc;
        switch (v[k].t) {
        case V_INT: rc = SQ.bind_int64(st, k + 1, v[k].i); break;
        case V_REAL: rc = SQ.bind_double(st, k + 1, v[k].d); break;
        case V_TEXT: rc = SQ.bind_text(st, k + 1, T + v[k].off, (int)v[k].n, SQ_STATIC); break;
        default: rc = SQ.bind_null(st, k + 1);
        }
        if (rc != SQ_OK) return rc;
    }
    return SQ_OK;
}

/* run a bound statement that returns no rows */
static int run(Writer *w, int k, const Val *v, const char *T, int *rc_out) {
    void *st = w->st[k];
    int rc = bind_vals(st, v, st_params[k], T);
    if (rc == SQ_OK) rc = SQ.step(st);
    SQ.reset(st);
    *rc_out = rc;
    return rc == SQ_DONE;
}

static int truthy(const Val *v) {
    return (v->t == V_INT && v->i != 0) || (v->t == V_REAL && v->d != 0.0) || v->t == V_TEXT;
}

static void w_reset_batch(Writer *w) {
    w->text.n = w->vals.n = w->entries.n = 0;
    w->count = 0;
    if (w->map) memset(w->map, 0, sizeof(Py_ssize_t) * w->map_cap);
}

/* a stored column (text, integer or NULL) as a Python object */
static PyObject *column_py(void *st, int k) {
    int t = SQ.column_type(st, k);
    if (t == SQ_NULLTYPE) return Py_NewRef(Py_None);
    if (t == 1) return PyLong_FromLongLong(SQ.column_int64(st, k));
    return PyUnicode_DecodeUTF8((const char *)SQ.column_text(st, k), SQ.column_bytes(st, k), "replace");
}

/* note a job whose user or uid differs from the stored job's: (cluster, job_id, user, uid,
 * stored user, stored uid); it is not written, Python quarantines it (take_conflicts) */
static int w_conflict(Writer *w, const Val *row, const char *T, void *sel) {
    if (w->conflicts == NULL && (w->conflicts = PyList_New(0)) == NULL) return 0;
    PyObject *t = Py_BuildValue("(NNNNNN)", val_py(&row[J_CLUSTER], T, Py_None), val_py(&row[J_JOBID], T, Py_None),
                                val_py(&row[J_USER], T, Py_None), val_py(&row[J_UID], T, Py_None),
                                column_py(sel, 3), column_py(sel, 4));
    if (t == NULL) return 0;
    int rc = PyList_Append(w->conflicts, t);
    Py_DECREF(t);
    return rc == 0;
}

/* write the batch in one transaction, with store.jobs.write_rows's rules: a stored job with the
 * same record hash, or a stored final job and a non-final row, is unchanged; an updated job's
 * steps replace the stored ones; new steps go in with a plain INSERT, and one that is already
 * there (not written by nomade) is replaced */
static int w_flush(Writer *w) {
    if (w->count == 0) return 1;
    if (w->db == NULL) { PyErr_SetString(WriteError, "the writer is closed"); return 0; }
    if (SQ.exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQ_OK) return w_error(w, "cannot start a write");
    Entry *E = (Entry *)w->entries.p;
    const Val *V = (const Val *)w->vals.p;
    const char *T = w->text.p;
    long long n_new = 0, n_upd = 0, n_same = 0;
    int rc = SQ_OK;
    const char *what = "write failed";
    for (Py_ssize_t i = 0; i < w->count; i++) {
        Entry *e = &E[i];
        const Val *row = V + e->row_at;
        void *sel = w->st[ST_SELECT];
        rc = bind_vals(sel, row, st_params[ST_SELECT], T);
        if (rc == SQ_OK) rc = SQ.step(sel);
        if (rc == SQ_ROW) {
            int same = SQ.column_type(sel, 0) != SQ_NULLTYPE && row[J_HASH].t == V_TEXT
                       && SQ.column_bytes(sel, 0) == row[J_HASH].n
                       && memcmp(SQ.column_text(sel, 0), T + row[J_HASH].off, row[J_HASH].n) == 0;
            int was_final = SQ.column_int64(sel, 1) != 0;
            e->write = 0;
            if (!same && SQ.column_int64(sel, 2) != 0) {   /* another owner: keep the stored job */
                int ok = w_conflict(w, row, T, sel);
                SQ.reset(sel);
                if (!ok) { SQ.exec(w->db, "ROLLBACK", NULL, NULL, NULL); return 0; }
                continue;
            }
            SQ.reset(sel);
            if (same || (was_final && !truthy(&row[J_FINAL]))) { n_same++; continue; }
            n_upd++;
            if (!run(w, ST_UPSERT_JOB, row, T, &rc)) goto fail;
            if (e->nsteps && !run(w, ST_DELETE_STEPS, row, T, &rc)) goto fail;
        } else if (rc == SQ_DONE) {
            SQ.reset(sel);
            n_new++;
            if (!run(w, ST_INSERT_JOB, row, T, &rc)) goto fail;
        } else {
            SQ.reset(sel);
            goto fail;
        }
        e->write = 1;
    }
    for (Py_ssize_t i = 0; i < w->count; i++) {
        Entry *e = &E[i];
        if (!e->write) continue;
        for (Py_ssize_t k = 0; k < e->nsteps; k++) {
            const Val *st = V + e->steps_at + k * NSTEP;
            if (!run(w, ST_INSERT_STEP, st, T, &rc)) {
                if (rc != SQ_CONSTRAINT || !run(w, ST_REPLACE_STEP, st, T, &rc)) goto fail;
            }
        }
    }
    what = "commit failed";
    if (SQ.exec(w->db, "COMMIT", NULL, NULL, NULL) != SQ_OK) goto fail;
    w->n_new += n_new; w->n_updated += n_upd; w->n_unchanged += n_same;
    w->n_jobs += w->count;
    w_reset_batch(w);
    return 1;
fail:
    (void)rc;
    w_error(w, what);
    SQ.exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    return 0;
}

static int same_key(const Val *a, const char *ta, const Val *b, const char *tb) {
    return a[J_CLUSTER].n == b[J_CLUSTER].n && a[J_JOBID].n == b[J_JOBID].n
        && memcmp(ta + a[J_CLUSTER].off, tb + b[J_CLUSTER].off, a[J_CLUSTER].n) == 0
        && memcmp(ta + a[J_JOBID].off, tb + b[J_JOBID].off, a[J_JOBID].n) == 0;
}

static int map_grow(Writer *w) {
    Py_ssize_t cap = w->map_cap ? w->map_cap * 2 : 1024;
    Py_ssize_t *m = PyMem_Calloc(cap, sizeof(Py_ssize_t));
    if (m == NULL) { PyErr_NoMemory(); return 0; }
    Entry *E = (Entry *)w->entries.p;
    for (Py_ssize_t i = 0; i < w->count; i++) {
        Py_ssize_t j = (Py_ssize_t)(E[i].h & (uint64_t)(cap - 1));
        while (m[j]) j = (j + 1) & (cap - 1);
        m[j] = i + 1;
    }
    PyMem_Free(w->map);
    w->map = m;
    w->map_cap = cap;
    return 1;
}

/* add one job (row: NROW Vals, steps: nsteps x NSTEP Vals, their texts in T[0:tn]) with
 * ingest_text's batch rules: the batch is written once it holds `batch` jobs and the next one is
 * another job than the last added (a batch never ends between two runs of one job); the same job
 * again in a batch replaces its earlier row (the later run wins) */
static int w_add(Writer *w, const Val *row, const Val *steps, Py_ssize_t nsteps, const char *T, Py_ssize_t tn) {
    if (row[J_CLUSTER].t != V_TEXT || row[J_JOBID].t != V_TEXT) {
        PyErr_SetString(PyExc_TypeError, "a job's cluster and job_id must be text");
        return 0;
    }
    /* the key as cluster \0 job_id, for the last-job rule */
    w->key.n = 0;
    if (!buf_add(&w->key, T + row[J_CLUSTER].off, row[J_CLUSTER].n) || !buf_add(&w->key, "", 1)
        || !buf_add(&w->key, T + row[J_JOBID].off, row[J_JOBID].n)) return 0;
    int is_last = w->has_last && w->last.n == w->key.n && memcmp(w->last.p, w->key.p, w->key.n) == 0;
    if (w->count >= w->batch && !is_last && !w_flush(w)) return 0;
    w->last.n = 0;
    if (!buf_add(&w->last, w->key.p, w->key.n)) return 0;
    w->has_last = 1;
    uint64_t h = fnv1a(w->key.p, w->key.n);

    Py_ssize_t base = w->text.n, row_at = w->vals.n / (Py_ssize_t)sizeof(Val);
    if (!buf_add(&w->text, T, tn)) return 0;
    Py_ssize_t nv = NROW + nsteps * NSTEP;
    if (!buf_add(&w->vals, row, sizeof(Val) * NROW) || !buf_add(&w->vals, steps, sizeof(Val) * nsteps * NSTEP)) return 0;
    Val *mine = (Val *)w->vals.p + row_at;
    for (Py_ssize_t k = 0; k < nv; k++) if (mine[k].t == V_TEXT) mine[k].off += base;

    if ((w->count + 1) * 2 > w->map_cap && !map_grow(w)) return 0;
    Entry *E = (Entry *)w->entries.p;
    const Val *V = (const Val *)w->vals.p;
    Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(w->map_cap - 1));
    while (w->map[j]) {
        Entry *e = &E[w->map[j] - 1];
        if (e->h == h && same_key(V + e->row_at, w->text.p, mine, w->text.p)) {
            e->row_at = row_at; e->steps_at = row_at + NROW; e->nsteps = nsteps;
            return 1;
        }
        j = (j + 1) & (w->map_cap - 1);
    }
    Entry ne = {row_at, row_at + NROW, nsteps, h, 0};
    if (!buf_add(&w->entries, &ne, sizeof(ne))) return 0;
    w->map[j] = ++w->count;
    return 1;
}

/* Writer.add(vals): jobs prepared by the Python reader, [(jobs row, [job_steps rows])] */
static PyObject *w_add_py(Writer *w, PyObject *vals) {
    if (!PyList_Check(vals)) { PyErr_SetString(PyExc_TypeError, "vals must be a list"); return NULL; }
    Buf text = {0}, steps = {0};
    Val row[NROW];
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vals); i++) {
        PyObject *it = PyList_GET_ITEM(vals, i), *r, *s;
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2 || !PyTuple_Check(r = PyTuple_GET_ITEM(it, 0))
            || PyTuple_GET_SIZE(r) != NROW || !PyList_Check(s = PyTuple_GET_ITEM(it, 1))) {
            PyErr_SetString(PyExc_TypeError, "each item must be (jobs row, [step rows])");
            goto done;
        }
        text.n = steps.n = 0;
        for (int k = 0; k < NROW; k++)
            if (!py_val(PyTuple_GET_ITEM(r, k), &row[k], &text)) goto bad;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(s); j++) {
            PyObject *st = PyList_GET_ITEM(s, j);
            Val sv[NSTEP];
            if (!PyTuple_Check(st) || PyTuple_GET_SIZE(st) != NSTEP) {
                PyErr_SetString(PyExc_TypeError, "a step row has the wrong length");
                goto done;
            }
            for (int k = 0; k < NSTEP; k++)
                if (!py_val(PyTuple_GET_ITEM(st, k), &sv[k], &text)) goto bad;
            if (!buf_add(&steps, sv, sizeof(sv))) goto done;
        }
        if (!w_add(w, row, (Val *)steps.p, PyList_GET_SIZE(s), text.p, text.n)) goto done;
    }
    result = Py_NewRef(Py_None);
    goto done;
bad:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a row value cannot be stored (not None, int, float or str)");
done:
    buf_free(&text);
    buf_free(&steps);
    return result;
}

static PyObject *w_flush_py(Writer *w, PyObject *unused) {
    if (!w_flush(w)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *w_counts_py(Writer *w, PyObject *unused) {
    return Py_BuildValue("(LLLL)", w->n_new, w->n_updated, w->n_unchanged, w->n_jobs);
}

static PyObject *w_take_conflicts_py(Writer *w, PyObject *unused) {
    PyObject *c = w->conflicts ? w->conflicts : PyList_New(0);
    w->conflicts = NULL;
    return c;
}

static PyObject *w_close_py(Writer *w, PyObject *unused) {
    w_close(w);
    Py_RETURN_NONE;
}

static PyMethodDef w_methods[] = {
    {"add", (PyCFunction)w_add_py, METH_O, "add(vals): jobs prepared in Python, [(row, steps)], into the batch"},
    {"flush", (PyCFunction)w_flush_py, METH_NOARGS, "write the pending batch (one transaction)"},
    {"counts", (PyCFunction)w_counts_py, METH_NOARGS, "(new, updated, unchanged, jobs) written so far"},
    {"take_conflicts", (PyCFunction)w_take_conflicts_py, METH_NOARGS,
     "the jobs not written since the last call because their owner differs from the stored job's"},
    {"close", (PyCFunction)w_close_py, METH_NOARGS, "close the connection; a pending batch is dropped"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nomade.slurm._sacct_scan.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_dealloc = (destructor)w_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A batch writer of jobs into the store, on its own connection (see open_writer)",
    .tp_methods = w_methods,
};

/* open_writer(path, lib, version, busy_ms, batch, sqls) */
static PyObject *open_writer(PyObject *self, PyObject *args) {
    const char *path;
    PyObject *lib, *sqls;
    long version;
    int busy_ms;
    Py_ssize_t batch;
    if (!PyArg_ParseTuple(args, "sOlinO!", &path, &lib, &version, &busy_ms, &batch, &PyTuple_Type, &sqls)) return NULL;
    if (PyTuple_GET_SIZE(sqls) != NST || batch < 1) { PyErr_SetString(PyExc_ValueError, "bad writer arguments"); return NULL; }
    if (!load_sqlite(lib)) return NULL;
    if (SQ.libversion_number() != version) {
        PyErr_Format(PyExc_ImportError, "SQLite %d found, the sqlite3 module has %ld", SQ.libversion_number(), version);
        return NULL;
    }
    Writer *w = PyObject_New(Writer, &WriterType);
    if (w == NULL) return NULL;
    memset((char *)w + sizeof(PyObject), 0, sizeof(Writer) - sizeof(PyObject));
    w->batch = batch;
    if (SQ.open_v2(path, &w->db, SQ_OPEN_READWRITE | SQ_OPEN_NOMUTEX, NULL) != SQ_OK) { w_error(w, "cannot open the store"); goto fail; }
    SQ.busy_timeout(w->db, busy_ms);
    if (SQ.exec(w->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536",
                NULL, NULL, NULL) != SQ_OK) { w_error(w, "cannot set up the connection"); goto fail; }
    for (int k = 0; k < NST; k++) {
        const char *sql = PyUnicode_AsUTF8(PyTuple_GET_ITEM(sqls, k));
        if (sql == NULL) goto fail;
        if (SQ.prepare_v2(w->db, sql, -1, &w->st[k], NULL) != SQ_OK) { w_error(w, "cannot prepare a statement"); goto fail; }
        if (SQ.bind_parameter_count(w->st[k]) != st_params[k]) {
            PyErr_Format(PyExc_ValueError, "statement %d takes %d parameters, not %d", k,
                         SQ.bind_parameter_count(w->st[k]), st_params[k]);
            goto fail;
        }
    }
    return (PyObject *)w;
fail:
    Py_DECREF(w);
    return NULL;
}


#endif
