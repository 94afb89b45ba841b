/* nomade.slurm._sacct_scan: the fast path of `nomade ingest sacct` for clean rows.
 *
 * scan(text, final, first_line, spec) reads a block of `sacct -P` lines (after the header; str, or
 * the UTF-8 bytes of a dump file) and returns (keys, vals, spans, leftover, leftover_line, rows):
 *   keys      (cluster, job_id) of every job whose rows are all "clean", and
 *   vals      its (job_row, step_rows);
 *   spans     (i, text, first_line) for every stretch that is not, coming before keys[i]: those
 *             are given to the Python reader (nomade.slurm.sacct_text / sacct_record), which
 *             decides what they are, re-joins broken rows and quarantines bad ones with a reason;
 *   leftover  the tail that may continue in the next block (the last job, or an open stretch);
 *   rows      how many rows the returned jobs hold.
 *
 * A clean row is one physical line with exactly the header's number of fields, no control
 * characters or U+FFFD, and a JobID of the plain ASCII forms. Its values are converted exactly as
 * the Python parsers in nomade.slurm.sacct_fields do: common forms are converted here, every other
 * form is handed to that Python parser (so this module never accepts what Python rejects, nor
 * reads a value differently), and a value the parser rejects makes the whole job a stretch for the
 * Python reader. The record hash is the blake2b digest (a Python callable) of the rows' mapped
 * fields. Nothing here is needed: without this module the Python reader does all of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030A0000   /* Python 3.9 */
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
static inline PyObject *Py_XNewRef(PyObject *o) { Py_XINCREF(o); return o; }
#endif

#define NF 31          /* mapped fields, in RowMapper's order (spec index tuple) */
#define MAXF 512       /* more header fields than this: no fast path (checked by the caller) */

enum { F_JOBID, F_RAW, F_CLUSTER, F_NAME, F_USER, F_UID, F_GROUP, F_ACCOUNT, F_PARTITION, F_QOS,
       F_STATE, F_EXIT, F_DEXIT, F_SUBMIT, F_ELIGIBLE, F_START, F_END, F_ELAPSED, F_LIMIT,
       F_REQMEM, F_REQCPUS, F_REQNODES, F_REQTRES, F_ALLOCCPUS, F_NNODES, F_ALLOCTRES,
       F_NODELIST, F_MAXRSS, F_TOTALCPU, F_WORKDIR, F_SUBMITLINE };

enum { P_INT, P_TIME, P_DURATION, P_LIMIT, P_MEM, P_EXIT, P_STATE, P_GPUS, P_DIGEST, P_SUM, NPY };

typedef struct {
    int n;                  /* fields per row */
    char delim;
    int idx[NF];            /* position of each mapped field, -1 if the dump lacks it */
    PyObject *cluster;      /* --cluster override or NULL */
    PyObject *source, *now, *dflt_cluster, *k_unit;
    PyObject *null;         /* what a NULL is bound as (see nomade.store.jobs.SQL_NULL) */
    PyObject *py[NPY];      /* Python parsers (borrowed from spec) */
    PyObject *hour_cache, *limit_cache, *state_cache, *gpu_cache;
} Spec;

typedef struct { const char *p; Py_ssize_t n; } Str;

static void clear_soft(void);

/* ------------------------------------------------------------------ small helpers */

static unsigned char cls[256];   /* 1 garbage, 2 '\r' */

static void init_cls(void) {
    for (int c = 0; c < 256; c++) {
        cls[c] = 0;
        if ((c <= 0x08) || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1e) || c == 0x7f) cls[c] = 1;
    }
    cls['\r'] = 2;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int all_digits(Str s, int maxlen) {
    if (s.n <= 0 || s.n > maxlen) return 0;
    for (Py_ssize_t i = 0; i < s.n; i++) if (!is_digit(s.p[i])) return 0;
    return 1;
}

static long long digits_val(const char *p, Py_ssize_t n) {
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
    return v;
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
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < s.n; i++) { h ^= (unsigned char)s.p[i]; h *= 1099511628211ULL; }
    SCEntry *e = &scache[h & (SC_SIZE - 1)];
    if (e->obj != NULL && e->h == h && e->n == s.n && memcmp(e->p, s.p, s.n) == 0) return Py_NewRef(e->obj);
    PyObject *o = mkstr(s);
    if (o == NULL) return NULL;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(o, &n);
    if (u == NULL || n != s.n) { clear_soft(); return o; }
    Py_XSETREF(e->obj, Py_NewRef(o));
    e->p = u; e->n = n; e->h = h;
    return o;
}

static PyObject *str_or_none(Str s) {
    if (s.n == 0) Py_RETURN_NONE;
    return cstr(s);
}

/* set when a Python call raised something that is not an Exception (KeyboardInterrupt,
 * SystemExit, MemoryError...): the error is kept and scan() returns it */
static int abort_scan = 0;

/* a value that did not convert: an Exception is cleared (the job goes to the Python reader,
 * which says why); anything else is kept for scan() to raise */
static void clear_soft(void) {
    if (!PyErr_Occurred() || abort_scan) return;
    if (PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_MemoryError)) PyErr_Clear();
    else abort_scan = 1;
}

/* call a Python parser on the field's text; NULL when it raises */
static PyObject *call1(PyObject *fn, PyObject *arg) {
    if (abort_scan) return NULL;   /* an error is pending: call nothing more */
    PyObject *r = PyObject_CallOneArg(fn, arg);
    if (r == NULL) clear_soft();
    return r;
}

static PyObject *call_text(PyObject *fn, Str s) {
    PyObject *t = mkstr(s);
    if (t == NULL) { clear_soft(); return NULL; }
    PyObject *r = call1(fn, t);
    Py_DECREF(t);
    return r;
}

/* the decimal number forms float() reads the same as this: 123, 123.456 */
static int plain_decimal(Str s, double *out) {
    Py_ssize_t i = 0, nd = 0;
    if (s.n <= 0 || s.n > 40) return 0;
    while (i < s.n && is_digit(s.p[i])) { i++; nd++; }
    if (i < s.n && s.p[i] == '.') {
        i++;
        Py_ssize_t fd = 0;
        while (i < s.n && is_digit(s.p[i])) { i++; fd++; }
        if (fd == 0) return 0;
    }
    if (i != s.n || nd == 0) return 0;
    char buf[48];
    memcpy(buf, s.p, s.n);
    buf[s.n] = 0;
    char *end = NULL;
    double v = PyOS_string_to_double(buf, &end, NULL);
    if (v == -1.0 && PyErr_Occurred()) { clear_soft(); return 0; }
    if (end != buf + s.n) return 0;
    *out = v;
    return 1;
}

/* ------------------------------------------------------------------ value parsers */

/* parse_int: '' -> None, digits -> int, else Python decides */
static PyObject *v_int(Spec *sp, Str s) {
    if (s.n == 0) Py_RETURN_NONE;
    if (all_digits(s, 18)) return PyLong_FromLongLong(digits_val(s.p, s.n));
    return call_text(sp->py[P_INT], s);
}

/* a small memo of hour prefix -> epoch base, filled from Python's own cache */
#define HMEMO 8
typedef struct { char key[13]; double base; int used; } HourMemo;
static HourMemo hmemo[HMEMO];
static int hmemo_next = 0;

static int canon_time(Str s) {
    if (s.n != 19) return 0;
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    for (int i = 0; i < 19; i++) {
        if (pat[i] == 'd') { if (!is_digit(s.p[i])) return 0; }
        else if (s.p[i] != pat[i]) return 0;
    }
    return 1;
}

/* parse_time: the cached-hour path of sacct_fields._parse_time, Python for the rest */
static int is_word(Str s, const char *w) { return (Py_ssize_t)strlen(w) == s.n && memcmp(s.p, w, s.n) == 0; }

static PyObject *v_time(Spec *sp, Str s) {
    /* sacct_fields._NO_TIME */
    if (s.n == 0 || is_word(s, "Unknown") || is_word(s, "None") || is_word(s, "N/A")) Py_RETURN_NONE;
    if (canon_time(s)) {
        int mi = (s.p[14] - '0') * 10 + (s.p[15] - '0');
        int se = (s.p[17] - '0') * 10 + (s.p[18] - '0');
        if (mi < 60 && se <= 60) {
            for (int k = 0; k < HMEMO; k++)
                if (hmemo[k].used && memcmp(hmemo[k].key, s.p, 13) == 0)
                    return PyFloat_FromDouble(hmemo[k].base + (double)(mi * 60) + (double)se);
            if (abort_scan) return NULL;
            PyObject *key = PyUnicode_DecodeUTF8(s.p, 13, NULL);
            if (key == NULL) { clear_soft(); return NULL; }
            PyObject *base = PyDict_GetItemWithError(sp->hour_cache, key);
            Py_DECREF(key);
            if (base == NULL && PyErr_Occurred()) { clear_soft(); return NULL; }
            if (base != NULL && PyFloat_Check(base)) {
                HourMemo *m = &hmemo[hmemo_next];
                hmemo_next = (hmemo_next + 1) % HMEMO;
                memcpy(m->key, s.p, 13);
                m->base = PyFloat_AS_DOUBLE(base);
                m->used = 1;
                return PyFloat_FromDouble(m->base + (double)(mi * 60) + (double)se);
            }
        }
    }
    return call_text(sp->py[P_TIME], s);  /* fills the hour cache, or raises */
}

/* parse_duration for [D-]HH:MM:SS[.f], MM:SS[.f], D-HH; Python for the rest */
static int fast_duration(Str s, double *out) {
    Py_ssize_t i = 0;
    long long days = 0;
    int has_days = 0;
    const char *dash = memchr(s.p, '-', s.n);
    if (dash != NULL) {
        Str d = {s.p, dash - s.p};
        if (!all_digits(d, 9)) return 0;
        days = digits_val(d.p, d.n);
        has_days = 1;
        i = d.n + 1;
    }
    Str parts[3];
    int np = 0;
    Py_ssize_t st = i;
    for (; i <= s.n; i++) {
        if (i == s.n || s.p[i] == ':') {
            if (np == 3) return 0;
            parts[np].p = s.p + st;
            parts[np].n = i - st;
            np++;
            st = i + 1;
        }
    }
    long long h, m;
    double sec;
    if (np == 3) {
        if (!all_digits(parts[0], 9) || !all_digits(parts[1], 9) || !plain_decimal(parts[2], &sec)) return 0;
        h = digits_val(parts[0].p, parts[0].n);
        m = digits_val(parts[1].p, parts[1].n);
    } else if (np == 2) {
        if (!all_digits(parts[0], 9) || !plain_decimal(parts[1], &sec)) return 0;
        h = 0;
        m = digits_val(parts[0].p, parts[0].n);
    } else if (np == 1 && has_days && days != 0) {
        if (!all_digits(parts[0], 9)) return 0;
        h = digits_val(parts[0].p, parts[0].n);
        m = 0;
        sec = 0.0;
    } else {
        return 0;
    }
    if (m >= 60 || sec >= 61) return 0;   /* Python raises: let it say so */
    *out = (double)(days * 86400 + h * 3600 + m * 60) + sec;
    return 1;
}

static PyObject *v_duration(Spec *sp, Str s) {   /* '' -> None */
    double d;
    if (s.n == 0) Py_RETURN_NONE;
    if (fast_duration(s, &d)) return PyFloat_FromDouble(d);
    return call_text(sp->py[P_DURATION], s);
}

/* parse_mem(text, unit)[0] / full pair: number [KMGTP or kmgtp] [n|c] */
static int fast_mem(Str s, char bare, double *mib, int *per_cpu) {
    Py_ssize_t n = s.n;
    *per_cpu = -1;
    if (n == 0) return 0;
    if (s.p[n - 1] == 'n' || s.p[n - 1] == 'c') { *per_cpu = s.p[n - 1] == 'c'; n--; }
    char unit = bare;
    if (n > 0) {
        char u = s.p[n - 1];
        if (u >= 'a' && u <= 'z') u = (char)(u - 32);
        if (u == 'K' || u == 'M' || u == 'G' || u == 'T' || u == 'P') { unit = u; n--; }
    }
    double num;
    Str num_s = {s.p, n};
    if (!plain_decimal(num_s, &num)) return 0;
    double f = unit == 'K' ? 1.0 / 1024 : unit == 'M' ? 1.0 : unit == 'G' ? 1024.0
             : unit == 'T' ? 1024.0 * 1024.0 : 1024.0 * 1024.0 * 1024.0;
    *mib = num * f;
    return 1;
}

/* MaxRSS: parse_mem(rss, "K")[0] if rss else None */
static PyObject *v_rss(Spec *sp, Str s) {
    double mib;
    int pc;
    if (s.n == 0) Py_RETURN_NONE;
    if (fast_mem(s, 'K', &mib, &pc)) return PyFloat_FromDouble(mib);
    PyObject *t = mkstr(s);
    if (t == NULL) { clear_soft(); return NULL; }
    PyObject *r = abort_scan ? NULL : PyObject_CallFunctionObjArgs(sp->py[P_MEM], t, sp->k_unit, NULL);
    Py_DECREF(t);
    if (r == NULL) { clear_soft(); return NULL; }
    PyObject *v = PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2 ? PyTuple_GET_ITEM(r, 0) : NULL;
    Py_XINCREF(v);
    Py_DECREF(r);
    return v;
}

/* ReqMem -> (req_mem_mb, req_mem_per_cpu) with RowMapper.job's rule for per_cpu */
static int v_reqmem(Spec *sp, Str s, PyObject **mem, PyObject **per) {
    double mib;
    int pc;
    if (s.n == 0) { *mem = Py_NewRef(Py_None); *per = Py_NewRef(Py_None); return 1; }
    if (fast_mem(s, 'M', &mib, &pc)) {
        *mem = PyFloat_FromDouble(mib);
        *per = PyLong_FromLong(pc < 0 ? 0 : pc);
        return *mem != NULL && *per != NULL;
    }
    PyObject *r = call_text(sp->py[P_MEM], s);
    if (r == NULL) return 0;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) { Py_DECREF(r); return 0; }
    PyObject *m = PyTuple_GET_ITEM(r, 0), *p = PyTuple_GET_ITEM(r, 1);
    *mem = Py_NewRef(m);
    if (p != Py_None || m == Py_None) *per = Py_NewRef(p);
    else *per = PyLong_FromLong(0);
    Py_DECREF(r);
    return 1;
}

/* parse_exit: '' -> (None, None); D:D -> ints; Python for the rest */
static int v_exit(Spec *sp, Str s, PyObject **code, PyObject **sig) {
    if (s.n == 0) { *code = Py_NewRef(Py_None); *sig = Py_NewRef(Py_None); return 1; }
    const char *colon = memchr(s.p, ':', s.n);
    if (colon != NULL) {
        Str a = {s.p, colon - s.p}, b = {colon + 1, s.n - (colon - s.p) - 1};
        if (all_digits(a, 9) && all_digits(b, 9)) {
            *code = PyLong_FromLongLong(digits_val(a.p, a.n));
            *sig = PyLong_FromLongLong(digits_val(b.p, b.n));
            return 1;
        }
    }
    PyObject *r = call_text(sp->py[P_EXIT], s);
    if (r == NULL) return 0;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) { Py_DECREF(r); return 0; }
    *code = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    *sig = Py_NewRef(PyTuple_GET_ITEM(r, 1));
    Py_DECREF(r);
    return 1;
}

/* a cached Python parser: cache.get(text) else parser(text); returns a new reference */
static PyObject *cached(PyObject *cache, PyObject *fn, PyObject *text) {
    if (abort_scan) return NULL;
    PyObject *hit = PyDict_GetItemWithError(cache, text);
    if (hit != NULL) return Py_NewRef(hit);
    if (PyErr_Occurred()) { clear_soft(); return NULL; }
    return call1(fn, text);
}

/* parse_state_field(state_raw text) -> (state, cancelled_by, is_final) */
static PyObject *v_state(Spec *sp, PyObject *text) {
    if (PyUnicode_GET_LENGTH(text) == 0) return Py_BuildValue("(OOi)", Py_None, Py_None, 0);
    PyObject *r = cached(sp->state_cache, sp->py[P_STATE], text);
    if (r != NULL && (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3)) { Py_DECREF(r); return NULL; }
    return r;
}

/* ------------------------------------------------------------------ job ids */

/* the plain JobID forms: 123, 123_4, 123_[5-9%2], 123+0, each with an optional .step */
typedef struct {
    Str job;            /* the job part */
    Str base, task, het, step;
    int has_task, has_het, has_step;
} JobIdParts;

static int step_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '+' || c == '-';
}

static int task_range_char(char c) { return is_digit(c) || c == ',' || c == '-' || c == '%' || c == ':'; }

static int parse_jobid(Str s, JobIdParts *j) {
    Py_ssize_t i = 0;
    memset(j, 0, sizeof(*j));
    while (i < s.n && is_digit(s.p[i])) i++;
    if (i == 0 || i > 18) return 0;
    j->base.p = s.p; j->base.n = i;
    if (i < s.n && s.p[i] == '_') {
        Py_ssize_t st = ++i;
        if (i < s.n && s.p[i] == '[') {
            i++;
            while (i < s.n && task_range_char(s.p[i])) i++;
            if (i >= s.n || s.p[i] != ']' || i == st + 1) return 0;
            i++;
        } else {
            while (i < s.n && is_digit(s.p[i])) i++;
            if (i == st) return 0;
        }
        j->task.p = s.p + st; j->task.n = i - st; j->has_task = 1;
    }
    if (i < s.n && s.p[i] == '+') {
        Py_ssize_t st = ++i;
        while (i < s.n && is_digit(s.p[i])) i++;
        if (i == st || i - st > 18) return 0;
        j->het.p = s.p + st; j->het.n = i - st; j->has_het = 1;
    }
    j->job.p = s.p; j->job.n = i;
    if (i < s.n && s.p[i] == '.') {
        Py_ssize_t st = ++i;
        while (i < s.n && step_char(s.p[i])) i++;
        if (i == st) return 0;
        j->step.p = s.p + st; j->step.n = i - st; j->has_step = 1;
    }
    return i == s.n;
}

/* ------------------------------------------------------------------ rows */

typedef struct {
    Str f[NF];
} Row;

static Str field(Row *r, int k) { return r->f[k]; }

/* the job's values in JOB_COLUMNS order (43) */
#define NJ 43
enum { J_CLUSTER, J_JOBID, J_RAW, J_ARRAY, J_TASK, J_HET, J_HETOFF, J_NAME, J_USER, J_UID, J_GRP,
       J_ACCOUNT, J_PARTITION, J_QOS, J_SUBMIT, J_ELIGIBLE, J_REQCPUS, J_REQNODES, J_REQMEM,
       J_PERCPU, J_LIMIT_S, J_LIMIT_RAW, J_GPUS, J_REQTRES, J_WORKDIR, J_SUBMITLINE, J_STATE,
       J_STATE_RAW, J_BY, J_FINAL, J_EXIT, J_SIG, J_DEXIT, J_DSIG, J_START, J_END, J_ELAPSED,
       J_ALLOCCPUS, J_NNODES, J_NODELIST, J_ALLOCTRES, J_TOTALCPU, J_MAXRSS };
#define NS 14

static void clear_objs(PyObject **o, int n) { for (int i = 0; i < n; i++) Py_CLEAR(o[i]); }

static PyObject *elapsed_int(Spec *sp, Str s) {
    PyObject *e = v_duration(sp, s);
    if (e == NULL || e == Py_None) return e;
    PyObject *r = PyNumber_Long(e);
    Py_DECREF(e);
    if (r == NULL) clear_soft();
    return r;
}

static int job_values(Spec *sp, Row *r, JobIdParts *jid, PyObject **o) {
    memset(o, 0, sizeof(PyObject *) * NJ);
    Str cl = field(r, F_CLUSTER);
    if (sp->cluster != NULL) o[J_CLUSTER] = Py_NewRef(sp->cluster);
    else if (cl.n) o[J_CLUSTER] = cstr(cl);
    else o[J_CLUSTER] = Py_NewRef(sp->dflt_cluster);
    o[J_JOBID] = mkstr(jid->job);
    o[J_RAW] = v_int(sp, field(r, F_RAW));
    if (jid->has_task) {
        o[J_ARRAY] = PyLong_FromLongLong(digits_val(jid->base.p, jid->base.n));
        o[J_TASK] = mkstr(jid->task);
        o[J_HET] = Py_NewRef(Py_None);
        o[J_HETOFF] = Py_NewRef(Py_None);
    } else if (jid->has_het) {
        o[J_ARRAY] = Py_NewRef(Py_None);
        o[J_TASK] = Py_NewRef(Py_None);
        o[J_HET] = PyLong_FromLongLong(digits_val(jid->base.p, jid->base.n));
        o[J_HETOFF] = PyLong_FromLongLong(digits_val(jid->het.p, jid->het.n));
    } else {
        o[J_ARRAY] = Py_NewRef(Py_None); o[J_TASK] = Py_NewRef(Py_None);
        o[J_HET] = Py_NewRef(Py_None); o[J_HETOFF] = Py_NewRef(Py_None);
    }
    o[J_NAME] = str_or_none(field(r, F_NAME));
    o[J_USER] = str_or_none(field(r, F_USER));
    o[J_UID] = v_int(sp, field(r, F_UID));
    o[J_GRP] = str_or_none(field(r, F_GROUP));
    o[J_ACCOUNT] = str_or_none(field(r, F_ACCOUNT));
    o[J_PARTITION] = str_or_none(field(r, F_PARTITION));
    o[J_QOS] = str_or_none(field(r, F_QOS));
    o[J_SUBMIT] = v_time(sp, field(r, F_SUBMIT));
    o[J_ELIGIBLE] = v_time(sp, field(r, F_ELIGIBLE));
    o[J_REQCPUS] = v_int(sp, field(r, F_REQCPUS));
    o[J_REQNODES] = v_int(sp, field(r, F_REQNODES));
    if (!v_reqmem(sp, field(r, F_REQMEM), &o[J_REQMEM], &o[J_PERCPU])) return 0;
    /* time limit: (seconds, raw) from Python's cache or parser */
    {
        PyObject *t = cstr(field(r, F_LIMIT));
        if (t == NULL) { clear_soft(); return 0; }
        PyObject *lim = cached(sp->limit_cache, sp->py[P_LIMIT], t);
        Py_DECREF(t);
        if (lim == NULL || !PyTuple_Check(lim) || PyTuple_GET_SIZE(lim) != 2) { Py_XDECREF(lim); return 0; }
        o[J_LIMIT_S] = Py_NewRef(PyTuple_GET_ITEM(lim, 0));
        o[J_LIMIT_RAW] = Py_NewRef(PyTuple_GET_ITEM(lim, 1));
        Py_DECREF(lim);
    }
    Str reqtres = field(r, F_REQTRES), alloctres = field(r, F_ALLOCTRES);
    o[J_REQTRES] = str_or_none(reqtres);
    o[J_ALLOCTRES] = str_or_none(alloctres);
    {
        PyObject *t = reqtres.n ? Py_XNewRef(o[J_REQTRES]) : alloctres.n ? Py_XNewRef(o[J_ALLOCTRES])
                                                                       : PyUnicode_FromString("");
        if (t == NULL) { clear_soft(); return 0; }
        o[J_GPUS] = cached(sp->gpu_cache, sp->py[P_GPUS], t);
        Py_DECREF(t);
        if (o[J_GPUS] == NULL) return 0;
    }
    o[J_WORKDIR] = str_or_none(field(r, F_WORKDIR));
    o[J_SUBMITLINE] = str_or_none(field(r, F_SUBMITLINE));
    {
        PyObject *raw = cstr(field(r, F_STATE));
        if (raw == NULL) { clear_soft(); return 0; }
        PyObject *st = v_state(sp, raw);
        if (st == NULL) { Py_DECREF(raw); return 0; }
        o[J_STATE] = Py_NewRef(PyTuple_GET_ITEM(st, 0));
        o[J_BY] = Py_NewRef(PyTuple_GET_ITEM(st, 1));
        o[J_FINAL] = Py_NewRef(PyTuple_GET_ITEM(st, 2));
        Py_DECREF(st);
        if (PyUnicode_GET_LENGTH(raw) == 0) { Py_DECREF(raw); o[J_STATE_RAW] = Py_NewRef(Py_None); }
        else o[J_STATE_RAW] = raw;
    }
    if (!v_exit(sp, field(r, F_EXIT), &o[J_EXIT], &o[J_SIG])) return 0;
    if (!v_exit(sp, field(r, F_DEXIT), &o[J_DEXIT], &o[J_DSIG])) return 0;
    o[J_START] = v_time(sp, field(r, F_START));
    o[J_END] = v_time(sp, field(r, F_END));
    o[J_ELAPSED] = elapsed_int(sp, field(r, F_ELAPSED));
    o[J_ALLOCCPUS] = v_int(sp, field(r, F_ALLOCCPUS));
    o[J_NNODES] = v_int(sp, field(r, F_NNODES));
    o[J_NODELIST] = str_or_none(field(r, F_NODELIST));
    o[J_TOTALCPU] = v_duration(sp, field(r, F_TOTALCPU));
    o[J_MAXRSS] = v_rss(sp, field(r, F_MAXRSS));
    for (int i = 0; i < NJ; i++) if (o[i] == NULL) { clear_soft(); return 0; }
    return 1;
}

/* (cluster, job_id, step_id, name, state, state_raw, exit, sig, start, end, elapsed,
 *  alloc_cpus, alloc_tres, node_list, max_rss_mb, total_cpu_s) */
static PyObject *step_row(Spec *sp, Row *r, PyObject *cluster, PyObject *job_id, Str step_id) {
    PyObject *o[NS + 2];
    memset(o, 0, sizeof(o));
    o[0] = Py_NewRef(cluster);
    o[1] = Py_NewRef(job_id);
    o[2] = cstr(step_id);
    o[3] = str_or_none(field(r, F_NAME));
    PyObject *raw = cstr(field(r, F_STATE));
    if (raw == NULL) { clear_soft(); goto fail; }
    PyObject *st = v_state(sp, raw);
    if (st == NULL) { Py_DECREF(raw); goto fail; }
    o[4] = Py_NewRef(PyTuple_GET_ITEM(st, 0));
    Py_DECREF(st);
    if (PyUnicode_GET_LENGTH(raw) == 0) { Py_DECREF(raw); o[5] = Py_NewRef(Py_None); }
    else o[5] = raw;
    if (!v_exit(sp, field(r, F_EXIT), &o[6], &o[7])) goto fail;
    o[8] = v_time(sp, field(r, F_START));
    o[9] = v_time(sp, field(r, F_END));
    o[10] = elapsed_int(sp, field(r, F_ELAPSED));
    o[11] = v_int(sp, field(r, F_ALLOCCPUS));
    o[12] = str_or_none(field(r, F_ALLOCTRES));
    o[13] = str_or_none(field(r, F_NODELIST));
    o[14] = v_rss(sp, field(r, F_MAXRSS));
    o[15] = v_duration(sp, field(r, F_TOTALCPU));
    for (int i = 0; i < NS + 2; i++) if (o[i] == NULL) goto fail;
    PyObject *t = PyTuple_New(NS + 2);
    if (t == NULL) goto fail;
    for (int i = 0; i < NS + 2; i++) PyTuple_SET_ITEM(t, i, o[i]);
    return t;
fail:
    clear_soft();
    clear_objs(o, NS + 2);
    return NULL;
}

/* ------------------------------------------------------------------ the hash material */

typedef struct { char *p; Py_ssize_t n, cap; } Buf;

static int buf_add(Buf *b, const char *p, Py_ssize_t n) {
    if (b->n + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        char *q = PyMem_Realloc(b->p, cap);
        if (q == NULL) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 1;
}

/* '\x1f'.join(the row's mapped fields, '' where missing), rows separated by '\x1e' */
static int material_add(Buf *b, Row *r, int first) {
    if (!first && !buf_add(b, "\x1e", 1)) return 0;
    for (int k = 0; k < NF; k++) {
        if (k && !buf_add(b, "\x1f", 1)) return 0;
        if (r->f[k].n && !buf_add(b, r->f[k].p, r->f[k].n)) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ the scanner */

typedef struct {
    int open, ok;
    Py_ssize_t start, line;
    PyObject *o[NJ];
    PyObject *steps;        /* list */
    Py_ssize_t rows;
    Str prefix;             /* '<job id>.' */
    char prefix_buf[96];
    Buf mat;
} Group;

static int split_line(Spec *sp, const char *p, Py_ssize_t n, Row *row, Str *all) {
    /* clean: exactly sp->n fields, no garbage, no stray '\r', valid utf-8 U+FFFD excluded */
    int nf = 0;
    Py_ssize_t st = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((char)c == sp->delim) {
            if (nf >= sp->n - 1) return 0;
            all[nf].p = p + st; all[nf].n = i - st; nf++;
            st = i + 1;
        } else if (cls[c]) {
            return 0;
        } else if (c == 0xEF && i + 2 < n && (unsigned char)p[i + 1] == 0xBF && (unsigned char)p[i + 2] == 0xBD) {
            return 0;
        }
    }
    all[nf].p = p + st; all[nf].n = n - st; nf++;
    if (nf != sp->n) return 0;
    for (int k = 0; k < NF; k++) {
        if (sp->idx[k] >= 0) row->f[k] = all[sp->idx[k]];
        else { row->f[k].p = ""; row->f[k].n = 0; }
    }
    return 1;
}

static void group_drop(Group *g) {
    clear_objs(g->o, NJ);
    Py_CLEAR(g->steps);
    g->open = 0;
}

/* finish(): max RSS over steps and the job row, TotalCPU summed over steps when the job has none */
static int group_finish(Spec *sp, Group *g) {
    Py_ssize_t ns = PyList_GET_SIZE(g->steps);
    if (ns == 0) return 1;
    PyObject *best = NULL;
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(g->steps, i), 14);
        if (v == Py_None) continue;
        if (best == NULL) { best = v; continue; }
        int gt = PyObject_RichCompareBool(v, best, Py_GT);
        if (gt < 0) { clear_soft(); return 0; }
        if (gt) best = v;
    }
    if (best != NULL) {
        if (g->o[J_MAXRSS] != Py_None) {
            int gt = PyObject_RichCompareBool(g->o[J_MAXRSS], best, Py_GT);
            if (gt < 0) { clear_soft(); return 0; }
            if (gt) best = g->o[J_MAXRSS];
        }
        Py_INCREF(best);
        Py_SETREF(g->o[J_MAXRSS], best);
    }
    if (g->o[J_TOTALCPU] == Py_None) {
        PyObject *vals = PyList_New(0);
        if (vals == NULL) return 0;
        for (Py_ssize_t i = 0; i < ns; i++) {
            PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(g->steps, i), 15);
            if (v != Py_None && PyList_Append(vals, v) < 0) { Py_DECREF(vals); clear_soft(); return 0; }
        }
        if (PyList_GET_SIZE(vals) == 1) {
            Py_SETREF(g->o[J_TOTALCPU], Py_NewRef(PyList_GET_ITEM(vals, 0)));
        } else if (PyList_GET_SIZE(vals) > 1) {
            PyObject *s = call1(sp->py[P_SUM], vals);
            if (s == NULL) { Py_DECREF(vals); return 0; }
            Py_SETREF(g->o[J_TOTALCPU], s);
        }
        Py_DECREF(vals);
    }
    return 1;
}

/* the group's key and (row, steps) (new references); 0 when it is not good */
static int group_item(Spec *sp, Group *g, PyObject **key_out, PyObject **val_out) {
    if (!group_finish(sp, g)) return 0;
    PyObject *mat = PyBytes_FromStringAndSize(g->mat.p, g->mat.n);
    if (mat == NULL) { clear_soft(); return 0; }
    PyObject *h = call1(sp->py[P_DIGEST], mat);
    Py_DECREF(mat);
    if (h == NULL) return 0;
    PyObject *row = PyTuple_New(NJ + 4);
    if (row == NULL) { Py_DECREF(h); clear_soft(); return 0; }
    for (int i = 0; i < NJ; i++) {
        if (g->o[i] == Py_None) { Py_DECREF(Py_None); g->o[i] = Py_NewRef(sp->null); }
        PyTuple_SET_ITEM(row, i, g->o[i]);
        g->o[i] = NULL;
    }
    /* the step rows are this module's own (only in g->steps): NULLs set in place */
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(g->steps); k++) {
        PyObject *st = PyList_GET_ITEM(g->steps, k);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(st); i++)
            if (PyTuple_GET_ITEM(st, i) == Py_None) {
                Py_DECREF(Py_None);
                PyTuple_SET_ITEM(st, i, Py_NewRef(sp->null));
            }
    }
    PyTuple_SET_ITEM(row, NJ, Py_NewRef(sp->source));
    PyTuple_SET_ITEM(row, NJ + 1, h);
    PyTuple_SET_ITEM(row, NJ + 2, Py_NewRef(sp->now));
    PyTuple_SET_ITEM(row, NJ + 3, Py_NewRef(sp->now));
    PyObject *key = PyTuple_Pack(2, PyTuple_GET_ITEM(row, J_CLUSTER), PyTuple_GET_ITEM(row, J_JOBID));
    PyObject *val = PyTuple_Pack(2, row, g->steps);
    Py_DECREF(row);
    if (key == NULL || val == NULL) {
        Py_XDECREF(key);
        Py_XDECREF(val);
        clear_soft();
        return 0;
    }
    *key_out = key;
    *val_out = val;
    return 1;
}

static int get_spec(PyObject *t, Spec *sp) {
    /* (n, delim, idx tuple, cluster|None, source, now, null, parsers tuple, caches tuple) */
    PyObject *idx, *cluster, *parsers, *caches;
    int delim;
    if (!PyArg_ParseTuple(t, "iiO!OUOOO!O!", &sp->n, &delim, &PyTuple_Type, &idx, &cluster,
                          &sp->source, &sp->now, &sp->null, &PyTuple_Type, &parsers, &PyTuple_Type, &caches))
        return 0;
    if (sp->n < 1 || sp->n > MAXF || delim < 1 || delim > 127 || PyTuple_GET_SIZE(idx) != NF
        || PyTuple_GET_SIZE(parsers) != NPY || PyTuple_GET_SIZE(caches) != 4) {
        PyErr_SetString(PyExc_ValueError, "bad scan spec");
        return 0;
    }
    sp->delim = (char)delim;
    for (int k = 0; k < NF; k++) {
        sp->idx[k] = (int)PyLong_AsLong(PyTuple_GET_ITEM(idx, k));
        if (sp->idx[k] >= sp->n) { PyErr_SetString(PyExc_ValueError, "bad field index"); return 0; }
    }
    if (PyErr_Occurred()) return 0;
    sp->cluster = cluster == Py_None ? NULL : cluster;
    for (int k = 0; k < NPY; k++) sp->py[k] = PyTuple_GET_ITEM(parsers, k);
    sp->hour_cache = PyTuple_GET_ITEM(caches, 0);
    sp->limit_cache = PyTuple_GET_ITEM(caches, 1);
    sp->state_cache = PyTuple_GET_ITEM(caches, 2);
    sp->gpu_cache = PyTuple_GET_ITEM(caches, 3);
    for (int k = 0; k < 4; k++)
        if (!PyDict_Check(PyTuple_GET_ITEM(caches, k))) { PyErr_SetString(PyExc_TypeError, "caches must be dicts"); return 0; }
    return 1;
}

/* bytes input is decoded as nomade reads dump files (UTF-8, bad bytes -> U+FFFD); str input was
 * valid text already */
static const char *span_errors = "strict";

/* what scan() returns: the good jobs' keys and (row, steps), and the stretches for Python, each
 * as (position in keys it comes before, text, first line) */
typedef struct { PyObject *keys, *vals, *spans; } Out;

static int emit_span(Out *out, const char *base, Py_ssize_t a, Py_ssize_t b, Py_ssize_t line) {
    PyObject *txt = PyUnicode_DecodeUTF8(base + a, b - a, span_errors);
    if (txt == NULL) return 0;
    PyObject *it = Py_BuildValue("(nNn)", PyList_GET_SIZE(out->keys), txt, line);
    if (it == NULL) return 0;
    int rc = PyList_Append(out->spans, it);
    Py_DECREF(it);
    return rc == 0;
}

typedef struct { int open; Py_ssize_t start, line; } Span;

/* the job just read is complete: its item if it is good (after the stretch before it, if any),
 * else it opens (or extends) a stretch for the Python reader. 0 on a Python error. */
static int close_group(Spec *sp, Group *g, Out *out, const char *s, Span *span, Py_ssize_t *rows) {
    if (!g->open) return 1;
    PyObject *key = NULL, *val = NULL;
    int rc = 1;
    if (g->ok && group_item(sp, g, &key, &val)) {
        if (span->open && !emit_span(out, s, span->start, g->start, span->line)) rc = 0;
        span->open = 0;
        if (rc && (PyList_Append(out->keys, key) < 0 || PyList_Append(out->vals, val) < 0)) rc = 0;
        Py_DECREF(key);
        Py_DECREF(val);
        *rows += g->rows;
    } else if (!span->open) {
        span->open = 1; span->start = g->start; span->line = g->line;
    }
    group_drop(g);
    return rc;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *text, *spec_t;
    int final;
    Py_ssize_t first_line;
    if (!PyArg_ParseTuple(args, "OpnO!", &text, &final, &first_line, &PyTuple_Type, &spec_t)) return NULL;
    int is_bytes = PyBytes_Check(text);
    if (!is_bytes && !PyUnicode_Check(text)) { PyErr_SetString(PyExc_TypeError, "text must be str or bytes"); return NULL; }
    span_errors = is_bytes ? "replace" : "strict";
    Spec sp;
    memset(&sp, 0, sizeof(sp));
    if (!get_spec(spec_t, &sp)) return NULL;
    sp.dflt_cluster = PyUnicode_FromString("default");
    sp.k_unit = PyUnicode_FromString("K");
    memset(hmemo, 0, sizeof(hmemo));  /* bases are re-read from Python's cache on every call */
    abort_scan = 0;
    Py_ssize_t len;
    const char *s;
    if (is_bytes) { s = PyBytes_AS_STRING(text); len = PyBytes_GET_SIZE(text); }
    else s = PyUnicode_AsUTF8AndSize(text, &len);
    if (s == NULL || sp.dflt_cluster == NULL || sp.k_unit == NULL) {
        Py_XDECREF(sp.dflt_cluster); Py_XDECREF(sp.k_unit);
        return NULL;
    }
    Str *all = PyMem_Malloc(sizeof(Str) * (sp.n + 1));
    Out out = {PyList_New(0), PyList_New(0), PyList_New(0)};
    Group g;
    memset(&g, 0, sizeof(g));
    Span span = {0, 0, 0};
    Py_ssize_t rows = 0, line = first_line, pos = 0;
    PyObject *result = NULL;
    if (all == NULL || out.keys == NULL || out.vals == NULL || out.spans == NULL) goto done;

    while (pos < len) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        Py_ssize_t end = nl ? nl - s : len, next = nl ? end + 1 : len;
        Py_ssize_t le = end;
        if (nl && le > pos && s[le - 1] == '\r') le--;
        Row row;
        int clean = (nl != NULL || final) && le > pos && split_line(&sp, s + pos, le - pos, &row, all);
        JobIdParts jid;
        int is_job = 0, is_step = 0;
        Str jf = clean ? row.f[F_JOBID] : (Str){NULL, 0};
        if (clean && g.open && jf.n > g.prefix.n && memcmp(jf.p, g.prefix.p, g.prefix.n) == 0) {
            is_step = 1;
            for (Py_ssize_t i = g.prefix.n; i < jf.n; i++) if (!step_char(jf.p[i])) { is_step = 0; break; }
        }
        if (clean && !is_step && parse_jobid(jf, &jid) && !jid.has_step && jid.job.n < 90) is_job = 1;
        if (abort_scan) goto done;
        if (is_job) {
            /* close the previous group */
            if (!close_group(&sp, &g, &out, s, &span, &rows)) goto done;
            g.open = 1; g.ok = 1; g.start = pos; g.line = line; g.rows = 1; g.mat.n = 0;
            g.steps = PyList_New(0);
            if (g.steps == NULL) goto done;
            memcpy(g.prefix_buf, jid.job.p, jid.job.n);
            g.prefix_buf[jid.job.n] = '.';
            g.prefix.p = g.prefix_buf; g.prefix.n = jid.job.n + 1;
            if (!job_values(&sp, &row, &jid, g.o) || !material_add(&g.mat, &row, 1)) { g.ok = 0; clear_objs(g.o, NJ); }
        } else if (is_step) {
            g.rows++;
            if (g.ok) {
                Str sid = {jf.p + g.prefix.n, jf.n - g.prefix.n};
                PyObject *st = step_row(&sp, &row, g.o[J_CLUSTER], g.o[J_JOBID], sid);
                if (st == NULL || PyList_Append(g.steps, st) < 0 || !material_add(&g.mat, &row, 0)) {
                    clear_soft();
                    g.ok = 0;
                    clear_objs(g.o, NJ);
                }
                Py_XDECREF(st);
            }
        } else {
            /* not a clean row: the job it follows (if any) goes to the Python reader */
            if (g.open) { g.ok = 0; clear_objs(g.o, NJ); }
            else if (!span.open) { span.open = 1; span.start = pos; span.line = line; }
        }
        line++;
        pos = next;
        if (abort_scan) goto done;
    }
    if (abort_scan) goto done;
    Py_ssize_t left_at = len, left_line = line;
    if (final) {
        if (!close_group(&sp, &g, &out, s, &span, &rows)) goto done;
        if (span.open && !emit_span(&out, s, span.start, len, span.line)) goto done;
    } else if (g.open) {
        /* the last job may go on in the next block */
        if (span.open && !emit_span(&out, s, span.start, g.start, span.line)) goto done;
        left_at = g.start; left_line = g.line;
        group_drop(&g);
    } else if (span.open) {
        left_at = span.start; left_line = span.line;
    }
    PyObject *left = is_bytes ? PyBytes_FromStringAndSize(s + left_at, len - left_at)
                              : PyUnicode_DecodeUTF8(s + left_at, len - left_at, "strict");
    if (left == NULL) goto done;
    result = Py_BuildValue("(OOONnn)", out.keys, out.vals, out.spans, left, left_line, rows);
done:
    group_drop(&g);
    PyMem_Free(g.mat.p);
    PyMem_Free(all);
    Py_XDECREF(out.keys);
    Py_XDECREF(out.vals);
    Py_XDECREF(out.spans);
    Py_DECREF(sp.dflt_cluster);
    Py_DECREF(sp.k_unit);
    return result;
}

/* flatten(rows, per): the rows (tuples of equal length) in groups of ``per``, each group one flat
 * tuple (the parameters of a many-row INSERT); a last group shorter than ``per`` is left out */
static PyObject *flatten(PyObject *self, PyObject *args) {
    PyObject *rows;
    Py_ssize_t per;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &rows, &per)) return NULL;
    if (per < 1) { PyErr_SetString(PyExc_ValueError, "per must be >= 1"); return NULL; }
    Py_ssize_t n = PyList_GET_SIZE(rows), groups = n / per;
    PyObject *out = PyList_New(groups);
    if (out == NULL) return NULL;
    for (Py_ssize_t g = 0; g < groups; g++) {
        Py_ssize_t width = 0;
        for (Py_ssize_t i = 0; i < per; i++) {
            PyObject *r = PyList_GET_ITEM(rows, g * per + i);
            if (!PyTuple_Check(r)) { Py_DECREF(out); PyErr_SetString(PyExc_TypeError, "rows must be tuples"); return NULL; }
            width += PyTuple_GET_SIZE(r);
        }
        PyObject *t = PyTuple_New(width);
        if (t == NULL) { Py_DECREF(out); return NULL; }
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 0; i < per; i++) {
            PyObject *r = PyList_GET_ITEM(rows, g * per + i);
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(r); j++) {
                PyObject *v = PyTuple_GET_ITEM(r, j);
                Py_INCREF(v);
                PyTuple_SET_ITEM(t, k++, v);
            }
        }
        PyList_SET_ITEM(out, g, t);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"flatten", flatten, METH_VARARGS, "flatten(rows, per) -> list of flat tuples of per rows each"},
    {"scan", scan, METH_VARARGS, "scan(text, final, first_line, spec) -> (keys, vals, spans, leftover, leftover_line, rows)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sacct_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sacct_scan(void) {
    init_cls();
    return PyModule_Create(&module);
}
