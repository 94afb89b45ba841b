/* Values of the jobs and job_steps rows as the sacct C reader makes them and the store writer binds
 * them, without a Python object each: NULL, integer, real, or a text lying in a byte buffer. Also
 * the str cache for repeating field texts, and the rows' column layout (store.jobs's columns).
 * Part of nomade.slurm._sacct_scan (included by _sacct_scan.c after Python.h). */
#ifndef NOMADE_SACCT_VALUES_H
#define NOMADE_SACCT_VALUES_H
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030A0000   /* Python 3.9 */
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif

typedef struct { const char *p; Py_ssize_t n; } Str;

/* FNV-1a, for the hash tables here (str cache, the writer's batch) */
static uint64_t fnv1a(const char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ULL; }
    return h;
}

static PyObject *mkstr(Str s) { return PyUnicode_DecodeUTF8(s.p, s.n, NULL); }

/* short field texts repeat (users, partitions, states, TRES, node lists): a direct-mapped cache
 * of the str objects made for them, so a repeat costs a hash and a compare, not a new object */
#define SC_SIZE 8192
#define SC_MAXLEN 64
typedef struct { PyObject *obj; const char *p; Py_ssize_t n; uint64_t h; } SCEntry;
static SCEntry scache[SC_SIZE];

static PyObject *cstr(Str s) {
    if (s.n > SC_MAXLEN) return mkstr(s);
    uint64_t h = fnv1a(s.p, s.n);
    SCEntry *e = &scache[h & (SC_SIZE - 1)];
    if (e->obj != NULL && e->h == h && e->n == s.n && memcmp(e->p, s.p, s.n) == 0) return Py_NewRef(e->obj);
    PyObject *o = mkstr(s);
    if (o == NULL) return NULL;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(o, &n);
    if (u == NULL) { Py_DECREF(o); return NULL; }
    if (n != s.n) return o;
    Py_XSETREF(e->obj, Py_NewRef(o));
    e->p = u; e->n = n; e->h = h;
    return o;
}

/* a growing byte buffer: texts, Val arrays, hash material */
typedef struct { char *p; Py_ssize_t n, cap; } Buf;

static int buf_add(Buf *b, const void *p, Py_ssize_t n) {
    if (b->n + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        char *q = PyMem_Realloc(b->p, cap);
        if (q == NULL) { PyErr_NoMemory(); return 0; }
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 1;
}

static void buf_free(Buf *b) { PyMem_Free(b->p); b->p = NULL; b->n = b->cap = 0; }

/* one column value, as it is bound into SQLite; a text lies in a Buf (off, n) */
enum { V_NULL, V_INT, V_REAL, V_TEXT };
typedef struct { int t; int n; union { long long i; double d; Py_ssize_t off; }; } Val;

static void set_null(Val *v) { v->t = V_NULL; }
static void set_int(Val *v, long long i) { v->t = V_INT; v->i = i; }
static void set_real(Val *v, double d) { if (d != d) v->t = V_NULL; else { v->t = V_REAL; v->d = d; } }

static int set_text(Buf *ar, Val *v, const char *p, Py_ssize_t n) {
    if (n > 0x7fffffff) { PyErr_SetString(PyExc_OverflowError, "text too long"); return 0; }
    v->t = V_TEXT; v->off = ar->n; v->n = (int)n;
    return buf_add(ar, p, n);
}

/* '' -> NULL, else the text */
static int set_str(Buf *ar, Val *v, Str s) {
    if (s.n == 0) { set_null(v); return 1; }
    return set_text(ar, v, s.p, s.n);
}

/* a Python value as a Val: None and NaN are NULL (as SQLite stores them); 0 for any other type
 * (no error set) or a text that is not valid UTF-8 (error set) */
static int py_val(PyObject *o, Val *v, Buf *ar) {
    if (o == Py_None) { set_null(v); return 1; }
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long i = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || (i == -1 && PyErr_Occurred())) return 0;
        set_int(v, i);
        return 1;
    }
    if (PyFloat_Check(o)) { set_real(v, PyFloat_AS_DOUBLE(o)); return 1; }
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(o, &n);
        return u != NULL && set_text(ar, v, u, n);
    }
    return 0;
}

static PyObject *val_py(const Val *v, const char *text, PyObject *null) {
    switch (v->t) {
    case V_INT: return PyLong_FromLongLong(v->i);
    case V_REAL: return PyFloat_FromDouble(v->d);
    case V_TEXT: return cstr((Str){text + v->off, v->n});
    default: return Py_NewRef(null);
    }
}

static int val_num(const Val *v, double *d) {
    if (v->t == V_INT) { *d = (double)v->i; return 1; }
    if (v->t == V_REAL) { *d = v->d; return 1; }
    return 0;
}

/* a jobs row: JOB_COLUMNS (43) + source, record_hash, ingested_at, updated_at */
#define NJ 43
#define NROW (NJ + 4)
enum { J_CLUSTER, J_JOBID, J_RAW, J_ARRAY, J_TASK, J_HET, J_HETOFF, J_NAME, J_USER, J_UID, J_GRP,
       J_ACCOUNT, J_PARTITION, J_QOS, J_SUBMIT, J_ELIGIBLE, J_REQCPUS, J_REQNODES, J_REQMEM,
       J_PERCPU, J_LIMIT_S, J_LIMIT_RAW, J_GPUS, J_REQTRES, J_WORKDIR, J_SUBMITLINE, J_STATE,
       J_STATE_RAW, J_BY, J_FINAL, J_EXIT, J_SIG, J_DEXIT, J_DSIG, J_START, J_END, J_ELAPSED,
       J_ALLOCCPUS, J_NNODES, J_NODELIST, J_ALLOCTRES, J_TOTALCPU, J_MAXRSS,
       J_SOURCE, J_HASH, J_INGESTED, J_UPDATED };
/* a job_steps row: cluster, job_id, step_id, name, state, state_raw, exit, sig, start, end,
 * elapsed, alloc_cpus, alloc_tres, node_list, max_rss_mb, total_cpu_s, ntasks, tres_usage_in_tot,
 * tres_usage_in_max */
#define NSTEP 19
enum { S_RSS = 14, S_TOTALCPU = 15 };

#endif
