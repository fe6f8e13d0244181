/* Byte-level helpers for the HTTP engine's hot path.

   The gateway's per-request cost is mostly interpreter work per header line: a call
   from llhttp into Python for each field, then a Python loop to decide which fields
   pass through. The functions here do that per-line work in one C call per message.
   Each has a pure-Python twin in ``heads.py`` with exactly the same results; the engine
   uses this module when it was built and the twin otherwise, and the tests hold the two
   to the same answers.

   Input is a head llhttp has already accepted, so it is well formed: CRLF line ends,
   no CR or LF inside a value, no obs-fold, no space before a colon. */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Hop-by-hop fields (RFC 9110 §7.6.1) and the framing the gateway writes itself. */
enum { F_OTHER = 0, F_DROP, F_CONNECTION, F_CONTENT_LENGTH, F_TRANSFER_ENCODING };

static int
classify(const char *n, Py_ssize_t len)
{
    switch (len) {
    case 2:
        return strncasecmp(n, "te", 2) == 0 ? F_DROP : F_OTHER;
    case 7:
        return (strncasecmp(n, "trailer", 7) == 0 || strncasecmp(n, "upgrade", 7) == 0) ? F_DROP : F_OTHER;
    case 10:
        if (strncasecmp(n, "connection", 10) == 0)
            return F_CONNECTION;
        return strncasecmp(n, "keep-alive", 10) == 0 ? F_DROP : F_OTHER;
    case 14:
        return strncasecmp(n, "content-length", 14) == 0 ? F_CONTENT_LENGTH : F_OTHER;
    case 16:
        return strncasecmp(n, "proxy-connection", 16) == 0 ? F_DROP : F_OTHER;
    case 17:
        return strncasecmp(n, "transfer-encoding", 17) == 0 ? F_TRANSFER_ENCODING : F_OTHER;
    case 18:
        return strncasecmp(n, "proxy-authenticate", 18) == 0 ? F_DROP : F_OTHER;
    case 19:
        return strncasecmp(n, "proxy-authorization", 19) == 0 ? F_DROP : F_OTHER;
    }
    return F_OTHER;
}

static int
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* True when a Connection value names a token other than keep-alive or close. */
static int
names_other_fields(const char *v, Py_ssize_t len)
{
    Py_ssize_t i = 0;
    while (i < len) {
        Py_ssize_t s = i, e;
        while (i < len && v[i] != ',')
            i++;
        e = i;
        i++; /* past the comma */
        while (s < e && is_ows(v[s]))
            s++;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e == s)
            continue;
        if (e - s == 10 && strncasecmp(v + s, "keep-alive", 10) == 0)
            continue;
        if (e - s == 5 && strncasecmp(v + s, "close", 5) == 0)
            continue;
        return 1;
    }
    return 0;
}

/* The next header line of [i, last): sets *next past its CRLF, returns its name length. */
static Py_ssize_t
next_line(const char *buf, Py_ssize_t i, Py_ssize_t last, Py_ssize_t *next, Py_ssize_t *line_len)
{
    const char *line = buf + i;
    const char *lf = memchr(line, '\n', (size_t)(last - i));
    *next = (lf - buf) + 1;
    *line_len = *next - i - 2; /* without CRLF */
    const char *colon = memchr(line, ':', (size_t)*line_len);
    return colon ? colon - line : *line_len;
}

/* scan_response_head(buf, start) -> (end, lines, relay, content_length, chunked)

   ``buf[start:]`` begins with a complete response head. ``end``: the offset just past
   its blank line. ``lines``: its header lines, each ending in CRLF. ``relay``: those
   lines without hop-by-hop and framing fields, or None when a Connection header names
   further fields (the caller then takes its general path). ``content_length``: the last
   Content-Length value (bytes, surrounding whitespace removed) or None. ``chunked``:
   whether a Transfer-Encoding field is present. */
static PyObject *
scan_response_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start;
    PyObject *result = NULL, *lines = NULL, *relay = NULL, *clv = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "scan_response_head(buf, start)");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;

    const char *buf = (const char *)view.buf;
    Py_ssize_t n = view.len;
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "start out of range");
        goto done;
    }
    const char *p = memmem(buf + start, (size_t)(n - start), "\r\n\r\n", 4);
    if (p == NULL) {
        PyErr_SetString(PyExc_ValueError, "no complete head");
        goto done;
    }
    Py_ssize_t blank = p - buf; /* the CRLF that ends the last line (or the status line) */
    const char *status_end = memchr(buf + start, '\n', (size_t)(blank + 2 - start));
    Py_ssize_t first = (status_end - buf) + 1;
    Py_ssize_t last = blank + 2; /* just past the last header line */
    if (first > last)
        first = last;

    /* First pass: the fields that matter to framing and hop-by-hop handling. */
    int dropped = 0, extra = 0, chunked = 0;
    const char *cl = NULL;
    Py_ssize_t cl_len = 0, i, next, line_len, kept = 0;
    for (i = first; i < last; i = next) {
        Py_ssize_t name_len = next_line(buf, i, last, &next, &line_len);
        int kind = classify(buf + i, name_len);
        if (kind == F_OTHER) {
            kept += next - i;
            continue;
        }
        dropped = 1;
        const char *v = buf + i + (name_len < line_len ? name_len + 1 : line_len);
        const char *ve = buf + i + line_len;
        while (v < ve && is_ows(*v))
            v++;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        if (kind == F_CONTENT_LENGTH) {
            cl = v;
            cl_len = ve - v;
        }
        else if (kind == F_TRANSFER_ENCODING)
            chunked = 1;
        else if (kind == F_CONNECTION && names_other_fields(v, ve - v))
            extra = 1;
    }

    lines = PyBytes_FromStringAndSize(buf + first, last - first);
    if (lines == NULL)
        goto done;
    if (extra)
        relay = Py_NewRef(Py_None);
    else if (!dropped)
        relay = Py_NewRef(lines);
    else {
        /* Second pass: copy the lines that pass through. */
        relay = PyBytes_FromStringAndSize(NULL, kept);
        if (relay == NULL)
            goto done;
        char *out = PyBytes_AS_STRING(relay);
        for (i = first; i < last; i = next) {
            Py_ssize_t name_len = next_line(buf, i, last, &next, &line_len);
            if (classify(buf + i, name_len) == F_OTHER) {
                memcpy(out, buf + i, (size_t)(next - i));
                out += next - i;
            }
        }
    }
    clv = cl ? PyBytes_FromStringAndSize(cl, cl_len) : Py_NewRef(Py_None);
    if (clv == NULL)
        goto done;
    result = Py_BuildValue("(nOOOO)", blank + 4, lines, relay, clv, chunked ? Py_True : Py_False);

done:
    Py_XDECREF(lines);
    Py_XDECREF(relay);
    Py_XDECREF(clv);
    PyBuffer_Release(&view);
    return result;
}

/* ---- request heads ------------------------------------------------------------------ */

/* Request fields the gateway rewrites rather than copies, plus hop-by-hop ones. */
enum { R_COPY = 0, R_DROP, R_HOST, R_XFF, R_CONNECTION };

static int
request_field(const char *n, Py_ssize_t len)
{
#define IS(s) (len == (Py_ssize_t)sizeof(s) - 1 && memcmp(n, s, sizeof(s) - 1) == 0)
    switch (len) {
    case 2:
        return IS("te") ? R_DROP : R_COPY;
    case 4:
        return IS("host") ? R_HOST : R_COPY;
    case 6:
        return IS("expect") ? R_DROP : R_COPY;
    case 7:
        return (IS("trailer") || IS("upgrade")) ? R_DROP : R_COPY;
    case 10:
        if (IS("connection"))
            return R_CONNECTION;
        return IS("keep-alive") ? R_DROP : R_COPY;
    case 14:
        return IS("content-length") ? R_DROP : R_COPY;
    case 15:
        return IS("x-forwarded-for") ? R_XFF : R_COPY;
    case 16:
        return (IS("proxy-connection") || IS("x-forwarded-host")) ? R_DROP : R_COPY;
    case 17:
        return (IS("transfer-encoding") || IS("x-forwarded-proto")) ? R_DROP : R_COPY;
    case 18:
        return IS("proxy-authenticate") ? R_DROP : R_COPY;
    case 19:
        return IS("proxy-authorization") ? R_DROP : R_COPY;
    }
    return R_COPY;
#undef IS
}

/* A str as latin-1 bytes without copying, or NULL when it is not a str of one-byte
   characters (the caller then leaves the work to Python). */
static const char *
latin1(PyObject *s, Py_ssize_t *len)
{
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *len = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

typedef struct {
    char *out;      /* NULL while measuring */
    Py_ssize_t len;
} sink;

static void
put(sink *k, const char *p, Py_ssize_t n)
{
    if (k->out != NULL)
        memcpy(k->out + k->len, p, (size_t)n);
    k->len += n;
}

#define PUTS(k, lit) put((k), (lit), (Py_ssize_t)sizeof(lit) - 1)

#define MAX_FIELDS 256

/* build_request_head(method, target, host, headers, client_ip, scheme, default_host,
                      body_len, chunked) -> bytes | None | NotImplemented

   The upstream request head: request line, Host (``host``, else the client's Host,
   else ``default_host``), the client's fields except hop-by-hop and rewritten ones,
   X-Forwarded-For (client's values plus ``client_ip``), X-Forwarded-Proto,
   X-Forwarded-Host (the client's Host), then Content-Length (``body_len`` >= 0) or
   ``transfer-encoding: chunked``. None: a Connection header names further fields (the
   caller's general path removes them). What this version does not handle (a string
   that is not latin-1, a header that is not a (str, str) pair) goes to the Python
   version, ``heads.build_request_head_py``, which answers for it. */
static PyObject *build_request_head_c(PyObject *const *args, Py_ssize_t nargs);

static PyObject *
build_request_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *r = build_request_head_c(args, nargs);
    if (r != Py_NotImplemented)
        return r;
    Py_DECREF(r);
    PyObject *mod = PyImport_ImportModule("agentgw.engine.heads");
    if (mod == NULL)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, "build_request_head_py");
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    r = PyObject_Vectorcall(fn, args, (size_t)nargs, NULL);
    Py_DECREF(fn);
    return r;
}

static PyObject *
build_request_head_c(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "build_request_head takes 9 arguments");
        return NULL;
    }
    Py_ssize_t method_n, target_n, host_n = 0, ip_n, scheme_n, dhost_n;
    const char *method = latin1(args[0], &method_n);
    const char *target = latin1(args[1], &target_n);
    const char *host = NULL;
    if (args[2] != Py_None && (host = latin1(args[2], &host_n)) == NULL)
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *headers = args[3];
    const char *ip = latin1(args[4], &ip_n);
    const char *scheme = latin1(args[5], &scheme_n);
    const char *dhost = latin1(args[6], &dhost_n);
    if (!method || !target || !ip || !scheme || !dhost || !PyList_Check(headers))
        Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t body_len = PyLong_AsSsize_t(args[7]);
    if (body_len == -1 && PyErr_Occurred())
        return NULL;
    int chunked = PyObject_IsTrue(args[8]);
    if (chunked < 0)
        return NULL;

    Py_ssize_t nh = PyList_GET_SIZE(headers);
    if (nh > MAX_FIELDS)
        Py_RETURN_NOTIMPLEMENTED;
    const char *kp[MAX_FIELDS], *vp[MAX_FIELDS];
    Py_ssize_t kn[MAX_FIELDS], vn[MAX_FIELDS];
    unsigned char role[MAX_FIELDS];
    const char *orig_host = NULL;
    Py_ssize_t orig_host_n = 0;
    int n_xff = 0;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *kv = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2)
            Py_RETURN_NOTIMPLEMENTED;
        kp[i] = latin1(PyTuple_GET_ITEM(kv, 0), &kn[i]);
        vp[i] = latin1(PyTuple_GET_ITEM(kv, 1), &vn[i]);
        if (kp[i] == NULL || vp[i] == NULL)
            Py_RETURN_NOTIMPLEMENTED;
        int r = request_field(kp[i], kn[i]);
        if (r == R_CONNECTION) {
            if (names_other_fields(vp[i], vn[i]))
                Py_RETURN_NONE;
            r = R_DROP;
        }
        else if (r == R_HOST) {
            orig_host = vp[i];
            orig_host_n = vn[i];
        }
        else if (r == R_XFF)
            n_xff++;
        role[i] = (unsigned char)r;
    }
    if (host == NULL) {
        if (orig_host != NULL && orig_host_n > 0) {
            host = orig_host;
            host_n = orig_host_n;
        }
        else {
            host = dhost;
            host_n = dhost_n;
        }
    }
    /* the client's X-Forwarded-For values joined by ", " (empty: none worth keeping) */
    Py_ssize_t xff_n = n_xff ? 2 * (n_xff - 1) : 0;
    for (Py_ssize_t i = 0; i < nh; i++)
        if (role[i] == R_XFF)
            xff_n += vn[i];
    char num[32];
    int num_n = 0;
    if (body_len >= 0)
        num_n = snprintf(num, sizeof num, "%zd", body_len);

    PyObject *result = NULL;
    sink k = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            result = PyBytes_FromStringAndSize(NULL, k.len);
            if (result == NULL)
                return NULL;
            k.out = PyBytes_AS_STRING(result);
            k.len = 0;
        }
        put(&k, method, method_n);
        PUTS(&k, " ");
        put(&k, target, target_n);
        PUTS(&k, " HTTP/1.1\r\nhost: ");
        put(&k, host, host_n);
        PUTS(&k, "\r\n");
        for (Py_ssize_t i = 0; i < nh; i++) {
            if (role[i] != R_COPY)
                continue;
            put(&k, kp[i], kn[i]);
            PUTS(&k, ": ");
            put(&k, vp[i], vn[i]);
            PUTS(&k, "\r\n");
        }
        PUTS(&k, "x-forwarded-for: ");
        if (xff_n > 0) {
            int seen = 0;
            for (Py_ssize_t i = 0; i < nh; i++) {
                if (role[i] != R_XFF)
                    continue;
                if (seen++)
                    PUTS(&k, ", ");
                put(&k, vp[i], vn[i]);
            }
            PUTS(&k, ", ");
        }
        put(&k, ip, ip_n);
        PUTS(&k, "\r\nx-forwarded-proto: ");
        put(&k, scheme, scheme_n);
        PUTS(&k, "\r\n");
        if (orig_host != NULL && orig_host_n > 0) {
            PUTS(&k, "x-forwarded-host: ");
            put(&k, orig_host, orig_host_n);
            PUTS(&k, "\r\n");
        }
        if (body_len >= 0) {
            PUTS(&k, "content-length: ");
            put(&k, num, num_n);
            PUTS(&k, "\r\n");
        }
        else if (chunked)
            PUTS(&k, "transfer-encoding: chunked\r\n");
        PUTS(&k, "\r\n");
    }
    return result;
}

/* ---- request header fields ------------------------------------------------------------ */

/* decode_fields(fields) -> (pairs, lowercase_names, size)

   ``fields``: one head's raw header names and values, alternating, as llhttp gave them
   (bytes; names are tokens, values have no leading whitespace). Returns the
   (lowercase name, value) string pairs (latin-1, trailing whitespace removed from each
   value, RFC 9110 §5.5), the lowercase names alone, and the head size they account for
   (each "name: value\r\n"). ``fields`` is emptied. */
static PyObject *
decode_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_fields(fields: list)");
        return NULL;
    }
    PyObject *fields = args[0];
    Py_ssize_t total = PyList_GET_SIZE(fields);
    if (total % 2) {
        PyErr_SetString(PyExc_ValueError, "fields must alternate names and values");
        return NULL;
    }
    Py_ssize_t n = total / 2;
    PyObject *pairs = PyList_New(n);
    PyObject *names = PyList_New(n);
    if (pairs == NULL || names == NULL)
        goto fail;
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *nb = PyList_GET_ITEM(fields, 2 * i), *vb = PyList_GET_ITEM(fields, 2 * i + 1);
        if (!PyBytes_Check(nb) || !PyBytes_Check(vb)) {
            PyErr_SetString(PyExc_TypeError, "header names and values must be bytes");
            goto fail;
        }
        Py_ssize_t nl = PyBytes_GET_SIZE(nb), vl = PyBytes_GET_SIZE(vb);
        const char *np = PyBytes_AS_STRING(nb), *vp = PyBytes_AS_STRING(vb);
        size += nl + vl + 4;
        /* Names are tokens (ASCII): lowercased straight into a new str. Anything else is
           decoded as Python would (latin-1, then str.lower). */
        int ascii = 1;
        for (Py_ssize_t j = 0; j < nl; j++)
            if ((unsigned char)np[j] > 127) {
                ascii = 0;
                break;
            }
        PyObject *name;
        if (ascii) {
            name = PyUnicode_New(nl, 127);
            if (name == NULL)
                goto fail;
            Py_UCS1 *out = PyUnicode_1BYTE_DATA(name);
            for (Py_ssize_t j = 0; j < nl; j++) {
                unsigned char c = (unsigned char)np[j];
                out[j] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : (Py_UCS1)c;
            }
        }
        else {
            PyObject *dec = PyUnicode_DecodeLatin1(np, nl, NULL);
            if (dec == NULL)
                goto fail;
            name = PyObject_CallMethod(dec, "lower", NULL);
            Py_DECREF(dec);
            if (name == NULL)
                goto fail;
        }
        while (vl > 0 && is_ows(vp[vl - 1]))
            vl--;
        PyObject *value = PyUnicode_DecodeLatin1(vp, vl, NULL);
        if (value == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        PyObject *pair = PyTuple_Pack(2, name, value);
        Py_DECREF(value);
        if (pair == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        PyList_SET_ITEM(names, i, name); /* steals */
        PyList_SET_ITEM(pairs, i, pair);
    }
    if (PyList_SetSlice(fields, 0, total, NULL) < 0)
        goto fail;
    return Py_BuildValue("(NNn)", pairs, names, size);

fail:
    Py_XDECREF(pairs);
    Py_XDECREF(names);
    return NULL;
}

/* ---- FieldSink --------------------------------------------------------------------------- */

/* A list that llhttp's header callback can be: ``sink(name, value)`` appends both.
   Given to httptools as the protocol's ``on_header``, it takes each header line without
   entering the interpreter; ``decode_fields`` reads it once the head is complete. */
static PyObject *
fieldsink_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if (kwargs != NULL || PyTuple_GET_SIZE(args) != 2) {
        PyErr_SetString(PyExc_TypeError, "FieldSink(name, value)");
        return NULL;
    }
    if (PyList_Append(self, PyTuple_GET_ITEM(args, 0)) < 0 || PyList_Append(self, PyTuple_GET_ITEM(args, 1)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyTypeObject FieldSinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agentgw.engine._speedups.FieldSink",
    .tp_basicsize = sizeof(PyListObject),
    .tp_flags = Py_TPFLAGS_DEFAULT, /* GC and the list flags come from the base */
    .tp_doc = "A list whose call appends (name, value): a header callback for llhttp.",
    .tp_call = fieldsink_call,
};

/* ---------------------------------------------------------------------------------- */
/* access_line: the access log's line of a request, when its values need no quoting    */
/* or escaping (see telemetry/accesslog.py, whose Python path gives the same bytes).   */

typedef struct {
    char *p;
    char *end;
} LineBuf;

static int
lb_put(LineBuf *b, const char *s, Py_ssize_t n)
{
    if (b->end - b->p < n)
        return -1;
    memcpy(b->p, s, n);
    b->p += n;
    return 0;
}

/* A str value as it is written: 1 written, 0 "needs the Python path", -1 error/full. */
static int
lb_value(LineBuf *b, PyObject *v, int json)
{
    if (!PyUnicode_Check(v) || !PyUnicode_IS_ASCII(v))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const char *s = (const char *)PyUnicode_DATA(v);
    if (json) {
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
                return 0;
        }
    } else {
        if (n == 0)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (s[i] == ' ' || s[i] == '"')
                return 0;
    }
    return lb_put(b, s, n) < 0 ? -1 : 1;
}

static int
lb_int(LineBuf *b, PyObject *v)
{
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    char tmp[24];
    char *e = tmp + sizeof tmp, *q = e;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--q = '-';
    return lb_put(b, q, e - q);
}

/* The time now, as telemetry/accesslog.py's _Clock writes it (UTC, milliseconds
   truncated): 2026-11-23T19:30:48.123Z; the whole seconds formatted once per second. */
static int
lb_now(LineBuf *b)
{
    static time_t last = (time_t)-1;
    static char prefix[32];
    static Py_ssize_t plen = 0;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    if (ts.tv_sec != last) {
        struct tm tm;
        if (gmtime_r(&ts.tv_sec, &tm) == NULL)
            return 0;
        plen = (Py_ssize_t)strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        if (plen == 0)
            return 0;
        last = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char tail[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z'};
    if (lb_put(b, prefix, plen) < 0 || lb_put(b, tail, 5) < 0)
        return -1;
    return 1;
}

/* round(ms, 3) as repr() writes it: the value to 3 decimals, trailing zeros dropped
   (one kept after the point). Both are dtoa's correctly rounded digits. 1 written, 0
   "needs the Python path", -1 error/full (as lb_value). */
static int
lb_ms(LineBuf *b, PyObject *v)
{
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    double ms = d * 1000;
    if (!(ms >= 0 && ms < 1e15))
        return 0;
    char *s = PyOS_double_to_string(ms, 'f', 3, 0, NULL);
    if (s == NULL)
        return -1;
    Py_ssize_t n = (Py_ssize_t)strlen(s);
    while (n > 0 && s[n - 1] == '0' && s[n - 2] != '.')
        n--;
    int r = lb_put(b, s, n);
    PyMem_Free(s);
    return r < 0 ? -1 : 1;
}

static PyObject *
access_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* (json, time, bind, listener, route, backend, client, method, path, host,
        status, duration_s, bytes_sent, bytes_received) */
    static const char *text_keys[] = {" bind=", " listener=", " route=", " backend=", " client=", " method=",
                                      " path=", " host="};
    static const char *json_keys[] = {"\",\"bind\":\"", "\",\"listener\":\"", "\",\"route\":\"",
                                      "\",\"backend\":\"", "\",\"client\":\"", "\",\"method\":\"",
                                      "\",\"path\":\"", "\",\"host\":\""};
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "access_line takes 14 arguments");
        return NULL;
    }
    int json = PyObject_IsTrue(args[0]);
    if (json < 0)
        return NULL;
    char buf[4096];
    LineBuf b = {buf, buf + sizeof buf};
    int r;
    if (json) {
        if (lb_put(&b, "{\"time\":\"", 9) < 0)
            Py_RETURN_NONE;
    }
    if (args[1] == Py_None) { /* the time now */
        if ((r = lb_now(&b)) <= 0)
            goto out;
    } else if ((r = lb_value(&b, args[1], json)) <= 0)
        goto out;
    if (json ? lb_put(&b, "\",\"level\":\"info\",\"msg\":\"request", 31) < 0
             : lb_put(&b, " info request", 13) < 0)
        Py_RETURN_NONE;
    for (int i = 0; i < 8; i++) {
        const char *k = json ? json_keys[i] : text_keys[i];
        if (lb_put(&b, k, (Py_ssize_t)strlen(k)) < 0)
            Py_RETURN_NONE;
        if ((r = lb_value(&b, args[2 + i], json)) <= 0)
            goto out;
    }
    if (lb_put(&b, json ? "\",\"status\":" : " status=", json ? 11 : 8) < 0 || lb_int(&b, args[10]) < 0)
        goto err;
    if (lb_put(&b, json ? ",\"duration_ms\":" : " duration_ms=", json ? 15 : 13) < 0)
        Py_RETURN_NONE;
    if ((r = lb_ms(&b, args[11])) <= 0)
        goto out;
    if (lb_put(&b, json ? ",\"bytes_sent\":" : " bytes_sent=", json ? 14 : 12) < 0 || lb_int(&b, args[12]) < 0)
        goto err;
    if (lb_put(&b, json ? ",\"bytes_received\":" : " bytes_received=", json ? 18 : 16) < 0 ||
        lb_int(&b, args[13]) < 0)
        goto err;
    if (json ? lb_put(&b, "}\n", 2) < 0 : lb_put(&b, "\n", 1) < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(buf, b.p - buf);
out:
    if (r < 0 && PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE; /* a value the Python path writes (quoted, escaped, non-ASCII), or too long */
err:
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan_response_head", (PyCFunction)(void (*)(void))scan_response_head, METH_FASTCALL,
     "scan_response_head(buf, start) -> (end, lines, relay, content_length, chunked)"},
    {"decode_fields", (PyCFunction)(void (*)(void))decode_fields, METH_FASTCALL,
     "decode_fields(fields) -> (pairs, lowercase_names, size)"},
    {"build_request_head", (PyCFunction)(void (*)(void))build_request_head, METH_FASTCALL,
     "build_request_head(method, target, host, headers, client_ip, scheme, default_host, body_len, chunked)"},
    {"access_line", (PyCFunction)(void (*)(void))access_line, METH_FASTCALL,
     "access_line(json, time, bind, listener, route, backend, client, method, path, host, status, duration_s,"
     " bytes_sent, bytes_received) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "agentgw.engine._speedups", "C helpers for the HTTP engine's hot path.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    FieldSinkType.tp_base = &PyList_Type;
    if (PyType_Ready(&FieldSinkType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "FieldSink", (PyObject *)&FieldSinkType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
