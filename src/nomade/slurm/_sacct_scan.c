/* nomade.slurm._sacct_scan: the fast path of `nomade ingest sacct` for clean rows.
 *
 * scan(text, final, first_line, spec[, writer, start]) reads a block of `sacct -P` lines (after the
 * header; str, or the UTF-8 bytes of a dump file) from byte `start` and returns
 * (keys, vals, spans, leftover, leftover_line, rows, resume):
 *   keys      (cluster, job_id) of every job whose rows are all "clean", and
 *   vals      its (job_row, step_rows), both empty with a writer: the jobs went into it;
 *   spans     (i, text, first_line) for every stretch that is not, coming before keys[i]: those
 *             are given to the Python reader (nomade.slurm.sacct_text / sacct_record), which
 *             decides what they are, re-joins broken rows and quarantines bad ones with a reason;
 *   leftover  the tail that may continue in the next block (the last job, or an open stretch);
 *   rows      how many rows the returned jobs hold;
 *   resume    -1, or (with a writer) where to call again in the same text: the scan stops before
 *             the first clean job after a stretch, so that the stretch's jobs reach the writer
 *             first and every job is written in input order.
 *
 * A clean row is one physical line with exactly the header's number of fields, no control
 * characters or U+FFFD, valid UTF-8, and a JobID of the plain ASCII forms. Its values are
 * converted exactly as the Python parsers in nomade.slurm.sacct_fields do: common forms are
 * converted here, every other form is handed to that Python parser (so this module never accepts
 * what Python rejects, nor reads a value differently), and a value the parser rejects makes the
 * whole job a stretch for the Python reader. The record hash is BLAKE2b over the rows' mapped
 * fields (csrc/blake2b.h; the same digest as sacct_scan.digest).
 *
 * open_writer(...) gives the store writer (csrc/store_writer.h) that binds the values into SQLite
 * without a Python object per value. Nothing here is needed: without this module the Python
 * reader and nomade.store.jobs.write_rows do all of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "csrc/values.h"
#include "csrc/blake2b.h"
#include "csrc/store_writer.h"

#define NF 34          /* mapped fields, in RowMapper's order (spec index tuple) */
#define NF_HASHED 31   /* always hashed; the rest only when the dump has them */
#define MAXF 512       /* more header fields than this: no fast path (checked by the caller) */

enum { F_JOBID, F_RAW, F_CLUSTER, F_NAME, F_USER, F_UID, F_GROUP, F_ACCOUNT, F_PARTITION, F_QOS,
       F_STATE, F_EXIT, F_DEXIT, F_SUBMIT, F_ELIGIBLE, F_START, F_END, F_ELAPSED, F_LIMIT,
       F_REQMEM, F_REQCPUS, F_REQNODES, F_REQTRES, F_ALLOCCPUS, F_NNODES, F_ALLOCTRES,
       F_NODELIST, F_MAXRSS, F_TOTALCPU, F_WORKDIR, F_SUBMITLINE, F_NTASKS, F_TRESTOT, F_TRESMAX };

enum { P_INT, P_TIME, P_DURATION, P_LIMIT, P_MEM, P_EXIT, P_STATE, P_GPUS, P_SUM, NPY };

typedef struct {
    int n;                  /* fields per row */
    char delim;
    int idx[NF];            /* position of each mapped field, -1 if the dump lacks it */
    PyObject *cluster;      /* --cluster override or NULL */
    PyObject *source, *now, *k_unit;
    double now_d;
    PyObject *null;         /* what a NULL is bound as (see nomade.store.jobs.SQL_NULL) */
    PyObject *py[NPY];      /* Python parsers (borrowed from spec) */
    PyObject *hour_cache, *limit_cache, *state_cache, *gpu_cache;
    unsigned char person[16];  /* blake2b personalization of the record hash */
} Spec;

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
    if (nd == s.n && nd <= 15) { *out = (double)digits_val(s.p, s.n); return 1; }   /* exact */
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
/* the result of a Python parser (stolen) as a Val; 0 when it raised or is of no bindable type */
static int py_res(PyObject *r, Val *v, Buf *ar) {
    if (r == NULL) return 0;
    int ok = py_val(r, v, ar);
    Py_DECREF(r);
    if (!ok) clear_soft();
    return ok;
}

/* the i-th item of a Python parser's tuple result as a Val */
static int item_val(PyObject *t, Py_ssize_t i, Val *v, Buf *ar) {
    int ok = py_val(PyTuple_GET_ITEM(t, i), v, ar);
    if (!ok) clear_soft();
    return ok;
}

/* ------------------------------------------------------------------ value parsers */

/* parse_int: '' -> None, digits -> int, else Python decides */
static int v_int(Spec *sp, Buf *ar, Str s, Val *v) {
    if (s.n == 0) { set_null(v); return 1; }
    if (all_digits(s, 18)) { set_int(v, digits_val(s.p, s.n)); return 1; }
    return py_res(call_text(sp->py[P_INT], s), v, ar);
}

/* a small memo of hour prefix -> epoch base, filled from Python's own cache */
#define HMEMO 8
typedef struct { char key[13]; double base; int used; } HourMemo;
static HourMemo hmemo[HMEMO];
static int hmemo_next = 0, hmemo_hit = 0;

static int canon_time(Str s) {
    if (s.n != 19) return 0;
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    for (int i = 0; i < 19; i++) {
        if (pat[i] == 'd') { if (!is_digit(s.p[i])) return 0; }
        else if (s.p[i] != pat[i]) return 0;
    }
    return 1;
}

static int is_word(Str s, const char *w) { return (Py_ssize_t)strlen(w) == s.n && memcmp(s.p, w, s.n) == 0; }

/* parse_time: the cached-hour path of sacct_fields._parse_time, Python for the rest */
static int v_time(Spec *sp, Buf *ar, Str s, Val *v) {
    /* sacct_fields._NO_TIME */
    if (s.n == 0 || is_word(s, "Unknown") || is_word(s, "None") || is_word(s, "N/A")) { set_null(v); return 1; }
    if (canon_time(s)) {
        int mi = (s.p[14] - '0') * 10 + (s.p[15] - '0');
        int se = (s.p[17] - '0') * 10 + (s.p[18] - '0');
        if (mi < 60 && se <= 60) {
            for (int j = 0; j < HMEMO; j++) {
                int k = (hmemo_hit + j) % HMEMO;   /* the last hit first: times come in runs */
                if (hmemo[k].used && memcmp(hmemo[k].key, s.p, 13) == 0) {
                    hmemo_hit = k;
                    set_real(v, hmemo[k].base + (double)(mi * 60) + (double)se);
                    return 1;
                }
            }
            if (abort_scan) return 0;
            PyObject *key = PyUnicode_DecodeUTF8(s.p, 13, NULL);
            if (key == NULL) { clear_soft(); return 0; }
            PyObject *base = PyDict_GetItemWithError(sp->hour_cache, key);
            Py_DECREF(key);
            if (base == NULL && PyErr_Occurred()) { clear_soft(); return 0; }
            if (base != NULL && PyFloat_Check(base)) {
                HourMemo *m = &hmemo[hmemo_next];
                hmemo_next = (hmemo_next + 1) % HMEMO;
                memcpy(m->key, s.p, 13);
                m->base = PyFloat_AS_DOUBLE(base);
                m->used = 1;
                set_real(v, m->base + (double)(mi * 60) + (double)se);
                return 1;
            }
        }
    }
    return py_res(call_text(sp->py[P_TIME], s), v, ar);  /* fills the hour cache, or raises */
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

static int v_duration(Spec *sp, Buf *ar, Str s, Val *v) {   /* '' -> None */
    double d;
    if (s.n == 0) { set_null(v); return 1; }
    if (fast_duration(s, &d)) { set_real(v, d); return 1; }
    return py_res(call_text(sp->py[P_DURATION], s), v, ar);
}

/* Elapsed: int(parse_duration(text)) */
static int v_elapsed(Spec *sp, Buf *ar, Str s, Val *v) {
    if (!v_duration(sp, ar, s, v)) return 0;
    if (v->t == V_REAL) {
        if (!(v->d > -9.2e18 && v->d < 9.2e18)) return 0;   /* int() of inf raises */
        set_int(v, (long long)v->d);
    } else if (v->t == V_TEXT) {
        return 0;
    }
    return 1;
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

/* a (a, b) tuple from a Python parser, or NULL */
static PyObject *pair(PyObject *r) {
    if (r != NULL && (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2)) { Py_DECREF(r); return NULL; }
    return r;
}

/* MaxRSS: parse_mem(rss, "K")[0] if rss else None */
static int v_rss(Spec *sp, Buf *ar, Str s, Val *v) {
    double mib;
    int pc;
    if (s.n == 0) { set_null(v); return 1; }
    if (fast_mem(s, 'K', &mib, &pc)) { set_real(v, mib); return 1; }
    PyObject *t = mkstr(s);
    if (t == NULL) { clear_soft(); return 0; }
    PyObject *r = abort_scan ? NULL : PyObject_CallFunctionObjArgs(sp->py[P_MEM], t, sp->k_unit, NULL);
    Py_DECREF(t);
    if (r == NULL) { clear_soft(); return 0; }
    r = pair(r);
    if (r == NULL) return 0;
    int ok = item_val(r, 0, v, ar);
    Py_DECREF(r);
    return ok;
}

/* ReqMem -> (req_mem_mb, req_mem_per_cpu) with RowMapper.job's rule for per_cpu (REQ_MEM_JOB = 2
 * for a value without the n/c suffix) */
static int v_reqmem(Spec *sp, Buf *ar, Str s, Val *mem, Val *per) {
    double mib;
    int pc;
    if (s.n == 0) { set_null(mem); set_null(per); return 1; }
    if (fast_mem(s, 'M', &mib, &pc)) { set_real(mem, mib); set_int(per, pc < 0 ? 2 : pc); return 1; }
    PyObject *r = pair(call_text(sp->py[P_MEM], s));
    if (r == NULL) return 0;
    PyObject *m = PyTuple_GET_ITEM(r, 0), *p = PyTuple_GET_ITEM(r, 1);
    int ok = item_val(r, 0, mem, ar);
    if (ok) {
        if (p != Py_None || m == Py_None) ok = item_val(r, 1, per, ar);
        else set_int(per, 2);   /* no n/c suffix: the whole job's memory (Slurm >= 21.08) */
    }
    Py_DECREF(r);
    return ok;
}

/* parse_exit: '' -> (None, None); D:D -> ints; Python for the rest */
static int v_exit(Spec *sp, Buf *ar, Str s, Val *code, Val *sig) {
    if (s.n == 0) { set_null(code); set_null(sig); return 1; }
    const char *colon = memchr(s.p, ':', s.n);
    if (colon != NULL) {
        Str a = {s.p, colon - s.p}, b = {colon + 1, s.n - (colon - s.p) - 1};
        if (all_digits(a, 9) && all_digits(b, 9)) {
            set_int(code, digits_val(a.p, a.n));
            set_int(sig, digits_val(b.p, b.n));
            return 1;
        }
    }
    PyObject *r = pair(call_text(sp->py[P_EXIT], s));
    if (r == NULL) return 0;
    int ok = item_val(r, 0, code, ar) && item_val(r, 1, sig, ar);
    Py_DECREF(r);
    return ok;
}

/* a cached Python parser: cache.get(text) else parser(text); returns a new reference */
static PyObject *cached(PyObject *cache, PyObject *fn, PyObject *text) {
    if (abort_scan) return NULL;
    PyObject *hit = PyDict_GetItemWithError(cache, text);
    if (hit != NULL) return Py_NewRef(hit);
    if (PyErr_Occurred()) { clear_soft(); return NULL; }
    return call1(fn, text);
}

/* State -> state, cancelled_by, is_final (parse_state_field), state_raw */
static int v_state(Spec *sp, Buf *ar, Str s, Val *state, Val *by, Val *final, Val *raw) {
    if (s.n == 0) {
        set_null(state); set_null(raw);
        if (by) set_null(by);
        if (final) set_int(final, 0);
        return 1;
    }
    PyObject *text = cstr(s);
    if (text == NULL) { clear_soft(); return 0; }
    PyObject *r = cached(sp->state_cache, sp->py[P_STATE], text);
    Py_DECREF(text);
    if (r != NULL && (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3)) { Py_DECREF(r); return 0; }
    if (r == NULL) return 0;
    int ok = item_val(r, 0, state, ar) && (by == NULL || item_val(r, 1, by, ar))
             && (final == NULL || item_val(r, 2, final, ar)) && set_text(ar, raw, s.p, s.n);
    Py_DECREF(r);
    return ok;
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

static int job_values(Spec *sp, Buf *ar, Row *r, JobIdParts *jid, Val *o) {
    Str cl = field(r, F_CLUSTER);
    int ok;
    if (sp->cluster != NULL) ok = py_val(sp->cluster, &o[J_CLUSTER], ar);
    else if (cl.n) ok = set_text(ar, &o[J_CLUSTER], cl.p, cl.n);
    else ok = set_text(ar, &o[J_CLUSTER], "default", 7);
    ok = ok && set_text(ar, &o[J_JOBID], jid->job.p, jid->job.n);
    ok = ok && v_int(sp, ar, field(r, F_RAW), &o[J_RAW]);
    set_null(&o[J_ARRAY]); set_null(&o[J_TASK]); set_null(&o[J_HET]); set_null(&o[J_HETOFF]);
    if (jid->has_task) {
        set_int(&o[J_ARRAY], digits_val(jid->base.p, jid->base.n));
        ok = ok && set_text(ar, &o[J_TASK], jid->task.p, jid->task.n);
    } else if (jid->has_het) {
        set_int(&o[J_HET], digits_val(jid->base.p, jid->base.n));
        set_int(&o[J_HETOFF], digits_val(jid->het.p, jid->het.n));
    }
    ok = ok && set_str(ar, &o[J_NAME], field(r, F_NAME))
            && set_str(ar, &o[J_USER], field(r, F_USER))
            && v_int(sp, ar, field(r, F_UID), &o[J_UID])
            && set_str(ar, &o[J_GRP], field(r, F_GROUP))
            && set_str(ar, &o[J_ACCOUNT], field(r, F_ACCOUNT))
            && set_str(ar, &o[J_PARTITION], field(r, F_PARTITION))
            && set_str(ar, &o[J_QOS], field(r, F_QOS))
            && v_time(sp, ar, field(r, F_SUBMIT), &o[J_SUBMIT])
            && v_time(sp, ar, field(r, F_ELIGIBLE), &o[J_ELIGIBLE])
            && v_int(sp, ar, field(r, F_REQCPUS), &o[J_REQCPUS])
            && v_int(sp, ar, field(r, F_REQNODES), &o[J_REQNODES])
            && v_reqmem(sp, ar, field(r, F_REQMEM), &o[J_REQMEM], &o[J_PERCPU]);
    if (!ok) return 0;
    /* time limit: (seconds, raw) from Python's cache or parser */
    {
        PyObject *t = cstr(field(r, F_LIMIT));
        if (t == NULL) { clear_soft(); return 0; }
        PyObject *lim = pair(cached(sp->limit_cache, sp->py[P_LIMIT], t));
        Py_DECREF(t);
        if (lim == NULL) return 0;
        ok = item_val(lim, 0, &o[J_LIMIT_S], ar) && item_val(lim, 1, &o[J_LIMIT_RAW], ar);
        Py_DECREF(lim);
        if (!ok) return 0;
    }
    Str reqtres = field(r, F_REQTRES), alloctres = field(r, F_ALLOCTRES);
    if (!set_str(ar, &o[J_REQTRES], reqtres) || !set_str(ar, &o[J_ALLOCTRES], alloctres)) return 0;
    {
        PyObject *t = cstr(reqtres.n ? reqtres : alloctres);
        if (t == NULL) { clear_soft(); return 0; }
        PyObject *g = cached(sp->gpu_cache, sp->py[P_GPUS], t);
        Py_DECREF(t);
        if (!py_res(g, &o[J_GPUS], ar)) return 0;
    }
    return set_str(ar, &o[J_WORKDIR], field(r, F_WORKDIR))
        && set_str(ar, &o[J_SUBMITLINE], field(r, F_SUBMITLINE))
        && v_state(sp, ar, field(r, F_STATE), &o[J_STATE], &o[J_BY], &o[J_FINAL], &o[J_STATE_RAW])
        && v_exit(sp, ar, field(r, F_EXIT), &o[J_EXIT], &o[J_SIG])
        && v_exit(sp, ar, field(r, F_DEXIT), &o[J_DEXIT], &o[J_DSIG])
        && v_time(sp, ar, field(r, F_START), &o[J_START])
        && v_time(sp, ar, field(r, F_END), &o[J_END])
        && v_elapsed(sp, ar, field(r, F_ELAPSED), &o[J_ELAPSED])
        && v_int(sp, ar, field(r, F_ALLOCCPUS), &o[J_ALLOCCPUS])
        && v_int(sp, ar, field(r, F_NNODES), &o[J_NNODES])
        && set_str(ar, &o[J_NODELIST], field(r, F_NODELIST))
        && v_duration(sp, ar, field(r, F_TOTALCPU), &o[J_TOTALCPU])
        && v_rss(sp, ar, field(r, F_MAXRSS), &o[J_MAXRSS]);
}

static int step_values(Spec *sp, Buf *ar, Row *r, const Val *job, Str step_id, Val *o) {
    o[0] = job[J_CLUSTER];
    o[1] = job[J_JOBID];
    return set_text(ar, &o[2], step_id.p, step_id.n)
        && set_str(ar, &o[3], field(r, F_NAME))
        && v_state(sp, ar, field(r, F_STATE), &o[4], NULL, NULL, &o[5])
        && v_exit(sp, ar, field(r, F_EXIT), &o[6], &o[7])
        && v_time(sp, ar, field(r, F_START), &o[8])
        && v_time(sp, ar, field(r, F_END), &o[9])
        && v_elapsed(sp, ar, field(r, F_ELAPSED), &o[10])
        && v_int(sp, ar, field(r, F_ALLOCCPUS), &o[11])
        && set_str(ar, &o[12], field(r, F_ALLOCTRES))
        && set_str(ar, &o[13], field(r, F_NODELIST))
        && v_rss(sp, ar, field(r, F_MAXRSS), &o[14])
        && v_duration(sp, ar, field(r, F_TOTALCPU), &o[15])
        && v_int(sp, ar, field(r, F_NTASKS), &o[16])
        && set_str(ar, &o[17], field(r, F_TRESTOT))
        && set_str(ar, &o[18], field(r, F_TRESMAX));
}

/* ------------------------------------------------------------------ the hash material */

/* the hash material: the mapped fields joined by '\x1f', rows separated by '\x1e' (the fields
 * after NF_HASHED only when the dump has them: sacct_scan.canonical_fields) */
static void material_add(const Spec *sp, B2 *b, Row *r, int first) {
    if (!first) b2_byte(b, '\x1e');
    for (int k = 0; k < NF; k++) {
        if (k >= NF_HASHED && sp->idx[k] < 0) continue;
        if (k) b2_byte(b, '\x1f');
        if (r->f[k].n) b2_update(b, r->f[k].p, r->f[k].n);
    }
}

/* digest(data, person) -> hex: for the test against hashlib */
static PyObject *digest_py(PyObject *self, PyObject *args) {
    Py_buffer data, person;
    if (!PyArg_ParseTuple(args, "y*y*", &data, &person)) return NULL;
    unsigned char pers[16] = {0};
    memcpy(pers, person.buf, person.len < 16 ? (size_t)person.len : 16);
    B2 b;
    char out[32];
    b2_init(&b, pers);
    b2_update(&b, data.buf, data.len);
    b2_hex(&b, out);
    PyBuffer_Release(&data);
    PyBuffer_Release(&person);
    return PyUnicode_FromStringAndSize(out, 32);
}

/* ------------------------------------------------------------------ the scanner */

typedef struct {
    int open, ok;
    Py_ssize_t start, line, rows;
    Val jv[NROW];
    Buf text;               /* the texts of jv and steps */
    Buf steps;              /* NSTEP Vals per step */
    Str prefix;             /* '<job id>.' */
    char prefix_buf[96];
    B2 mat;
} Group;

static int utf8_ok(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (p[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = p[i + 1];
            if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80) return 0;
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return 0;  /* overlong, surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = p[i + 1];
            if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80) return 0;
            if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static int split_line(Spec *sp, const char *p, Py_ssize_t n, Row *row, Str *all, int check_utf8) {
    /* clean: exactly sp->n fields, no garbage, no stray '\r', valid UTF-8 without U+FFFD */
    int nf = 0, high = 0;
    Py_ssize_t st = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((char)c == sp->delim) {
            if (nf >= sp->n - 1) return 0;
            all[nf].p = p + st; all[nf].n = i - st; nf++;
            st = i + 1;
        } else if (cls[c]) {
            return 0;
        } else if (c >= 0x80) {
            high = 1;
            if (c == 0xEF && i + 2 < n && (unsigned char)p[i + 1] == 0xBF && (unsigned char)p[i + 2] == 0xBD) return 0;
        }
    }
    all[nf].p = p + st; all[nf].n = n - st; nf++;
    if (nf != sp->n) return 0;
    if (high && check_utf8 && !utf8_ok((const unsigned char *)p, n)) return 0;
    for (int k = 0; k < NF; k++) {
        if (sp->idx[k] >= 0) row->f[k] = all[sp->idx[k]];
        else { row->f[k].p = ""; row->f[k].n = 0; }
    }
    return 1;
}

static Py_ssize_t group_nsteps(Group *g) { return g->steps.n / (Py_ssize_t)(sizeof(Val) * NSTEP); }

/* finish(): max RSS over steps and the job row, TotalCPU summed over steps when the job has none */
static int group_finish(Spec *sp, Group *g) {
    Py_ssize_t ns = group_nsteps(g);
    if (ns == 0) return 1;
    Val *S = (Val *)g->steps.p;
    const Val *best = NULL;
    double bv = 0, x;
    for (Py_ssize_t i = 0; i < ns; i++) {
        const Val *v = &S[i * NSTEP + S_RSS];
        if (v->t == V_NULL) continue;
        if (!val_num(v, &x)) return 0;
        if (best == NULL || x > bv) { best = v; bv = x; }
    }
    if (best != NULL) {
        Val *mine = &g->jv[J_MAXRSS];
        if (mine->t == V_NULL) *mine = *best;
        else if (!val_num(mine, &x)) return 0;
        else if (!(x > bv)) *mine = *best;
    }
    if (g->jv[J_TOTALCPU].t == V_NULL) {
        Py_ssize_t nv = 0, last = -1;
        for (Py_ssize_t i = 0; i < ns; i++)
            if (S[i * NSTEP + S_TOTALCPU].t != V_NULL) { nv++; last = i; }
        if (nv == 1) {
            g->jv[J_TOTALCPU] = S[last * NSTEP + S_TOTALCPU];
        } else if (nv > 1) {   /* Python's sum (its float addition is compensated from 3.12) */
            PyObject *vals = PyList_New(0);
            if (vals == NULL) { clear_soft(); return 0; }
            for (Py_ssize_t i = 0; i < ns; i++) {
                const Val *v = &S[i * NSTEP + S_TOTALCPU];
                if (v->t == V_NULL) continue;
                PyObject *o = v->t == V_TEXT ? NULL : val_py(v, g->text.p, Py_None);
                if (o == NULL || PyList_Append(vals, o) < 0) { Py_XDECREF(o); Py_DECREF(vals); clear_soft(); return 0; }
                Py_DECREF(o);
            }
            PyObject *s = call1(sp->py[P_SUM], vals);
            Py_DECREF(vals);
            if (!py_res(s, &g->jv[J_TOTALCPU], &g->text)) return 0;
        }
    }
    return 1;
}

/* the record's last four columns: source, record hash, ingested_at, updated_at */
static int group_seal(Spec *sp, Group *g) {
    if (!group_finish(sp, g)) return 0;
    char hex[32];
    b2_hex(&g->mat, hex);
    if (!set_text(&g->text, &g->jv[J_HASH], hex, 32)) { clear_soft(); return 0; }
    if (!py_val(sp->source, &g->jv[J_SOURCE], &g->text)) { clear_soft(); return 0; }
    set_real(&g->jv[J_INGESTED], sp->now_d);
    set_real(&g->jv[J_UPDATED], sp->now_d);
    return 1;
}

static PyObject *vals_tuple(const Val *v, int n, const char *T, PyObject *null) {
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *o = val_py(&v[i], T, null);
        if (o == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, o);
    }
    return t;
}

/* the group as Python objects: key (cluster, job_id) and (row, steps) */
static int group_py(Spec *sp, Group *g, PyObject **key_out, PyObject **val_out) {
    PyObject *row = vals_tuple(g->jv, NROW, g->text.p, sp->null);
    Py_ssize_t ns = group_nsteps(g);
    PyObject *steps = row ? PyList_New(ns) : NULL;
    if (steps == NULL) { Py_XDECREF(row); return 0; }
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *st = vals_tuple((Val *)g->steps.p + i * NSTEP, NSTEP, g->text.p, sp->null);
        if (st == NULL) { Py_DECREF(row); Py_DECREF(steps); return 0; }
        PyList_SET_ITEM(steps, i, st);
    }
    *key_out = PyTuple_Pack(2, PyTuple_GET_ITEM(row, J_CLUSTER), PyTuple_GET_ITEM(row, J_JOBID));
    *val_out = PyTuple_Pack(2, row, steps);
    Py_DECREF(row);
    Py_DECREF(steps);
    if (*key_out == NULL || *val_out == NULL) { Py_CLEAR(*key_out); Py_CLEAR(*val_out); return 0; }
    return 1;
}

static int get_spec(PyObject *t, Spec *sp) {
    /* (n, delim, idx tuple, cluster|None, source, now, null, parsers tuple, caches tuple, person) */
    PyObject *idx, *cluster, *parsers, *caches;
    const char *person;
    Py_ssize_t person_n;
    int delim;
    if (!PyArg_ParseTuple(t, "iiO!OUO!OO!O!y#", &sp->n, &delim, &PyTuple_Type, &idx, &cluster,
                          &sp->source, &PyFloat_Type, &sp->now, &sp->null, &PyTuple_Type, &parsers,
                          &PyTuple_Type, &caches, &person, &person_n))
        return 0;
    if (person_n > 16) { PyErr_SetString(PyExc_ValueError, "person longer than 16 bytes"); return 0; }
    memset(sp->person, 0, 16);
    memcpy(sp->person, person, person_n);
    if (sp->n < 1 || sp->n > MAXF || delim < 1 || delim > 127 || PyTuple_GET_SIZE(idx) != NF
        || PyTuple_GET_SIZE(parsers) != NPY || PyTuple_GET_SIZE(caches) != 4
        || (cluster != Py_None && !PyUnicode_Check(cluster))) {
        PyErr_SetString(PyExc_ValueError, "bad scan spec");
        return 0;
    }
    sp->delim = (char)delim;
    sp->now_d = PyFloat_AS_DOUBLE(sp->now);
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

/* what scan() returns: the good jobs' keys and (row, steps) (none with a writer), and the
 * stretches for Python, each as (position in keys it comes before, text, first line) */
typedef struct { PyObject *keys, *vals, *spans; Writer *sink; Py_ssize_t stop_at, stop_line; } Out;

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

/* the job just read is complete: it goes to the writer (or the output lists) if it is good,
 * after the stretch before it, if any; else it opens (or extends) a stretch for the Python
 * reader. With a writer, a good job after a stretch stops the scan there (2): the stretch must be
 * written first, and the job is read again by the next call. 0 on a Python error. */
static int close_group(Spec *sp, Group *g, Out *out, const char *s, Span *span, Py_ssize_t *rows) {
    if (!g->open) return 1;
    int rc = 1;
    g->open = 0;
    if (abort_scan) return 0;
    if (g->ok && group_seal(sp, g)) {
        if (span->open) {
            span->open = 0;
            if (!emit_span(out, s, span->start, g->start, span->line)) return 0;
            if (out->sink != NULL) { out->stop_at = g->start; out->stop_line = g->line; return 2; }
        }
        if (out->sink != NULL) {
            if (!w_add(out->sink, g->jv, (Val *)g->steps.p, group_nsteps(g), g->text.p, g->text.n)) return 0;
        } else {
            PyObject *key = NULL, *val = NULL;
            if (!group_py(sp, g, &key, &val)) return 0;
            if (PyList_Append(out->keys, key) < 0 || PyList_Append(out->vals, val) < 0) rc = 0;
            Py_DECREF(key);
            Py_DECREF(val);
        }
        *rows += g->rows;
    } else if (abort_scan) {
        return 0;
    } else if (!span->open) {
        span->open = 1; span->start = g->start; span->line = g->line;
    }
    return rc;
}

static void group_start(Spec *sp, Group *g, Py_ssize_t pos, Py_ssize_t line, JobIdParts *jid) {
    g->open = 1; g->ok = 1; g->start = pos; g->line = line; g->rows = 1;
    b2_init(&g->mat, sp->person); g->text.n = 0; g->steps.n = 0;
    memcpy(g->prefix_buf, jid->job.p, jid->job.n);
    g->prefix_buf[jid->job.n] = '.';
    g->prefix.p = g->prefix_buf; g->prefix.n = jid->job.n + 1;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *text, *spec_t, *sink = Py_None;
    int final;
    Py_ssize_t first_line, start = 0;
    if (!PyArg_ParseTuple(args, "OpnO!|On", &text, &final, &first_line, &PyTuple_Type, &spec_t, &sink, &start)) return NULL;
    int is_bytes = PyBytes_Check(text);
    if (!is_bytes && !PyUnicode_Check(text)) { PyErr_SetString(PyExc_TypeError, "text must be str or bytes"); return NULL; }
    if (sink != Py_None && !PyObject_TypeCheck(sink, &WriterType)) { PyErr_SetString(PyExc_TypeError, "sink must be a Writer"); return NULL; }
    span_errors = is_bytes ? "replace" : "strict";
    Spec sp;
    memset(&sp, 0, sizeof(sp));
    if (!get_spec(spec_t, &sp)) return NULL;
    sp.k_unit = PyUnicode_FromString("K");
    memset(hmemo, 0, sizeof(hmemo));  /* bases are re-read from Python's cache on every call */
    abort_scan = 0;
    Py_ssize_t len;
    const char *s;
    if (is_bytes) { s = PyBytes_AS_STRING(text); len = PyBytes_GET_SIZE(text); }
    else s = PyUnicode_AsUTF8AndSize(text, &len);
    if (s == NULL || sp.k_unit == NULL) { Py_XDECREF(sp.k_unit); return NULL; }
    if (start < 0 || start > len) { Py_DECREF(sp.k_unit); PyErr_SetString(PyExc_ValueError, "start out of range"); return NULL; }
    Str *all = PyMem_Malloc(sizeof(Str) * (sp.n + 1));
    Out out = {PyList_New(0), PyList_New(0), PyList_New(0), sink == Py_None ? NULL : (Writer *)sink, -1, 0};
    Group g;
    memset(&g, 0, sizeof(g));
    Span span = {0, 0, 0};
    Py_ssize_t rows = 0, line = first_line, pos = start;
    PyObject *result = NULL;
    int stopped = 0, rc;
    if (all == NULL || out.keys == NULL || out.vals == NULL || out.spans == NULL) goto done;

    while (pos < len) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        Py_ssize_t end = nl ? nl - s : len, next = nl ? end + 1 : len;
        Py_ssize_t le = end;
        if (nl && le > pos && s[le - 1] == '\r') le--;
        Row row;
        int clean = (nl != NULL || final) && le > pos && split_line(&sp, s + pos, le - pos, &row, all, is_bytes);
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
            rc = close_group(&sp, &g, &out, s, &span, &rows);
            if (rc == 0) goto done;
            if (rc == 2) { stopped = 1; break; }
            group_start(&sp, &g, pos, line, &jid);
            if (!job_values(&sp, &g.text, &row, &jid, g.jv)) { clear_soft(); g.ok = 0; }
            else material_add(&sp, &g.mat, &row, 1);
        } else if (is_step) {
            g.rows++;
            if (g.ok) {
                Str sid = {jf.p + g.prefix.n, jf.n - g.prefix.n};
                Val sv[NSTEP];
                if (!step_values(&sp, &g.text, &row, g.jv, sid, sv) || !buf_add(&g.steps, sv, sizeof(sv))) {
                    clear_soft();
                    g.ok = 0;
                } else {
                    material_add(&sp, &g.mat, &row, 0);
                }
            }
        } else {
            /* not a clean row: the job it follows (if any) goes to the Python reader */
            if (g.open) g.ok = 0;
            else if (!span.open) { span.open = 1; span.start = pos; span.line = line; }
        }
        line++;
        pos = next;
        if (abort_scan) goto done;
    }
    if (abort_scan) goto done;
    Py_ssize_t left_at = len, left_line = line;
    if (stopped) {
        left_at = out.stop_at; left_line = out.stop_line;
    } else if (final) {
        rc = close_group(&sp, &g, &out, s, &span, &rows);
        if (rc == 0) goto done;
        if (rc == 2) { stopped = 1; left_at = out.stop_at; left_line = out.stop_line; }
        else if (span.open && !emit_span(&out, s, span.start, len, span.line)) goto done;
    } else if (g.open) {
        /* the last job may go on in the next block */
        if (span.open && !emit_span(&out, s, span.start, g.start, span.line)) goto done;
        left_at = g.start; left_line = g.line;
    } else if (span.open) {
        left_at = span.start; left_line = span.line;
    }
    /* stopped: the caller resumes at left_at in the same text (nothing is copied) */
    PyObject *left = stopped ? Py_NewRef(Py_None)
                   : is_bytes ? PyBytes_FromStringAndSize(s + left_at, len - left_at)
                              : PyUnicode_DecodeUTF8(s + left_at, len - left_at, "strict");
    if (left == NULL) goto done;
    result = Py_BuildValue("(OOONnnn)", out.keys, out.vals, out.spans, left, left_line, rows,
                           stopped ? left_at : (Py_ssize_t)-1);
done:
    if (result == NULL && abort_scan && !PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "scan aborted");
    buf_free(&g.text);
    buf_free(&g.steps);
    PyMem_Free(all);
    Py_XDECREF(out.keys);
    Py_XDECREF(out.vals);
    Py_XDECREF(out.spans);
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
    {"scan", scan, METH_VARARGS, "scan(text, final, first_line, spec[, writer, start]) -> (keys, vals, spans, leftover, leftover_line, rows, resume)"},
    {"digest", digest_py, METH_VARARGS, "digest(data, person) -> 32 hex digits of the 16-byte BLAKE2b"},
    {"open_writer", open_writer, METH_VARARGS, "open_writer(path, lib, version, busy_ms, batch, sqls) -> Writer"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sacct_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sacct_scan(void) {
    init_cls();
    if (PyType_Ready(&WriterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    WriteError = PyErr_NewException("nomade.slurm._sacct_scan.WriteError", NULL, NULL);
    if (WriteError == NULL || PyModule_AddObject(m, "WriteError", Py_NewRef(WriteError)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
