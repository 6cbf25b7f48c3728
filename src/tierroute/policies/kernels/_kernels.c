/* Compiled hot-path kernels for the learned router (optional; numpy implementations are the fallback).

A trained router's decision in numpy is ~75 small array calls, each paying Python and numpy dispatch overhead
that dwarfs its arithmetic; in a busy gateway that overhead triples (caches are cold between requests). These
functions do the same arithmetic in one call each:

  hash_features   hashed word/bigram/char n-gram counts -> (bucket, log1p(count) * idf), sorted, L2-normalised
  dense_features  the structure features (DENSE_NAMES) in one pass: exactly the Python values
  Scorer          a trained predictor's arrays, held once; .predict gives every model's probability for one
                  prompt: the linear stage with its Platt step, and the second-stage trees and blend if any

The hashes are bit-for-bit those of featurizers.HashingFeaturizer (same polynomial, salts and bucket fold), so
a router trained on either path runs on either. Floating-point sums may differ from numpy's in the last bits
(different summation order): tests compare with a tolerance.

Arguments are objects exposing the buffer protocol (numpy arrays, bytes), checked for item type, size and
C-contiguity; nothing here needs numpy's headers. The GIL is held throughout: every call takes microseconds.
No function keeps state between calls. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const uint64_t MUL = 0x100000001B3ULL; /* FNV-64 prime */
static const uint64_t MIX = 0x9E3779B97F4A7C15ULL;
static const uint64_t SALT_WORD = 0x51ED270BULL;
static const uint64_t SALT_BIGRAM = 0x2545F491ULL;
static const uint64_t SALT_CHAR = 0x6C8E9CF5ULL;

/* a-z, 0-9 and every byte of a non-ASCII character (the text is lower-cased UTF-8) */
static inline int is_word_byte(uint8_t b) { return (b >= 48 && b <= 57) || (b >= 97 && b <= 122) || b >= 128; }

/* One argument as a C-contiguous buffer of `itemsize`-byte items of kind 'f' (float), 'i' (signed) or 'u'
   (unsigned). Returns 0 on success; on failure sets an exception naming the argument. */
static int get_array(PyObject *obj, Py_buffer *view, const char *name, char kind, Py_ssize_t itemsize, int writable) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name, writable ? " writable" : "");
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<' || *f == '>' || *f == '!') f++;
    char got = 0; /* strchr would also "find" the terminator of an empty format */
    if (*f && strchr("fde", *f)) got = 'f';
    else if (*f && strchr("bhilqn", *f)) got = 'i';
    else if (*f && strchr("BHILQN", *f)) got = 'u';
    if (got != kind || view->itemsize != itemsize || f[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s: expected %zd-byte %s items, got format '%s'", name, itemsize,
                     kind == 'f' ? "float" : kind == 'i' ? "signed int" : "unsigned int", view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t count_of(Py_buffer *view) { return view->len / view->itemsize; }

static void release_all(Py_buffer *views, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&views[i]);
}

/* Sort bucket ids ascending: insertion sort for a few, else LSD radix sort in as few passes of at most 11-bit
   digits as cover the keys (below 2**bits): two passes of 8 bits for the default 2**16 buckets. Sequential
   passes over two small buffers, rather than increments scattered over a per-bucket table that a busy gateway
   would find evicted from the cache on every request. `tmp` holds n keys; returns whichever buffer holds the
   result. */
static uint32_t *sort_buckets(uint32_t *a, uint32_t *tmp, Py_ssize_t n, int bits) {
    if (n <= 48) {
        for (Py_ssize_t i = 1; i < n; i++) {
            const uint32_t key = a[i];
            Py_ssize_t j = i;
            for (; j > 0 && a[j - 1] > key; j--) a[j] = a[j - 1];
            a[j] = key;
        }
        return a;
    }
    const int passes = (bits + 10) / 11;
    const int width = (bits + passes - 1) / passes;
    const uint32_t mask = ((uint32_t)1 << width) - 1;
    uint32_t *src = a, *dst = tmp;
    Py_ssize_t start[2048];
    for (int pass = 0, shift = 0; pass < passes; pass++, shift += width) {
        memset(start, 0, (size_t)(mask + 1) * sizeof start[0]);
        for (Py_ssize_t i = 0; i < n; i++) start[(src[i] >> shift) & mask]++;
        Py_ssize_t at = 0;
        for (uint32_t d = 0; d <= mask; d++) {
            const Py_ssize_t c = start[d];
            start[d] = at;
            at += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) dst[start[(src[i] >> shift) & mask]++] = src[i];
        uint32_t *swap = src;
        src = dst;
        dst = swap;
    }
    return src;
}

/* hash_features(raw, out_idx, out_vals, log1p, idf, bits, ngrams, word_bigrams) -> int
   raw: lower-cased UTF-8 bytes; out_idx: int64[cap]; out_vals: float32[cap]; log1p: float32 table of
   log1p(count); idf: float32[2**bits] or None; ngrams: tuple of char n-gram lengths. Fills the first n entries
   of out_idx/out_vals with the distinct buckets (ascending) and their normalised weights, returns n. */
static PyObject *hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "hash_features takes 8 arguments, got %zd", nargs);
        return NULL;
    }
    const long bits = PyLong_AsLong(args[5]);
    const int word_bigrams = PyObject_IsTrue(args[7]);
    if (PyErr_Occurred()) return NULL;
    if (bits < 1 || bits > 30) {
        PyErr_Format(PyExc_ValueError, "bits must be in [1, 30], got %ld", bits);
        return NULL;
    }
    if (!PyTuple_Check(args[6]) || PyTuple_GET_SIZE(args[6]) > 16) {
        PyErr_SetString(PyExc_TypeError, "ngrams: expected a tuple of at most 16 ints");
        return NULL;
    }
    const Py_ssize_t n_kinds = PyTuple_GET_SIZE(args[6]);
    long kinds[16];
    for (Py_ssize_t i = 0; i < n_kinds; i++) {
        kinds[i] = PyLong_AsLong(PyTuple_GET_ITEM(args[6], i));
        if (kinds[i] == -1 && PyErr_Occurred()) return NULL;
        if (kinds[i] < 1) {
            PyErr_Format(PyExc_ValueError, "ngrams: lengths must be positive, got %ld", kinds[i]);
            return NULL;
        }
    }

    Py_buffer v[5];
    int got = 0;
    uint32_t *keys = NULL;
    PyObject *result = NULL;
    if (PyObject_GetBuffer(args[0], &v[0], PyBUF_SIMPLE) != 0) return NULL;
    got = 1;
    if (get_array(args[1], &v[1], "out_idx", 'i', 8, 1)) goto done;
    got = 2;
    if (get_array(args[2], &v[2], "out_vals", 'f', 4, 1)) goto done;
    got = 3;
    if (get_array(args[3], &v[3], "log1p", 'f', 4, 0)) goto done;
    got = 4;
    const int has_idf = args[4] != Py_None;
    if (has_idf) {
        if (get_array(args[4], &v[4], "idf", 'f', 4, 0)) goto done;
        got = 5;
        if (count_of(&v[4]) != ((Py_ssize_t)1 << bits)) {
            PyErr_Format(PyExc_ValueError, "idf: expected 2**%ld entries, got %zd", bits, count_of(&v[4]));
            goto done;
        }
    }

    const uint8_t *d = (const uint8_t *)v[0].buf;
    const Py_ssize_t n = v[0].len;
    /* every char n-gram kind, the words and the bigrams yield at most n hashes each */
    const Py_ssize_t room = n * (n_kinds + 2) + 1;
    keys = (uint32_t *)PyMem_Malloc((size_t)room * 2 * sizeof(uint32_t));
    if (!keys) {
        PyErr_NoMemory();
        goto done;
    }
    const int shift = 64 - (int)bits;
    Py_ssize_t nk = 0;
#define ADD(hash) (keys[nk++] = (uint32_t)(((uint64_t)(hash) * MIX) >> shift))
    for (Py_ssize_t t = 0; t < n_kinds; t++) {
        const Py_ssize_t k = kinds[t];
        if (n < k) continue;
        const uint64_t salt = SALT_CHAR * (uint64_t)k;
        uint64_t top = 1; /* MUL^(k-1): the weight of the byte leaving the window */
        for (Py_ssize_t j = 1; j < k; j++) top *= MUL;
        uint64_t h = 0;
        for (Py_ssize_t j = 0; j < k; j++) h = h * MUL + (uint64_t)d[j] + 1;
        ADD(h ^ salt);
        for (Py_ssize_t s = 1; s + k <= n; s++) {
            h = (h - ((uint64_t)d[s - 1] + 1) * top) * MUL + (uint64_t)d[s + k - 1] + 1;
            ADD(h ^ salt);
        }
    }
    uint64_t prev = 0;
    int have_prev = 0;
    for (Py_ssize_t i = 0; i < n;) {
        if (!is_word_byte(d[i])) {
            i++;
            continue;
        }
        uint64_t h = 0;
        for (; i < n && is_word_byte(d[i]); i++) h = h * MUL + (uint64_t)d[i] + 1;
        if (have_prev && word_bigrams) ADD((prev * MIX + h) ^ SALT_BIGRAM);
        ADD(h ^ SALT_WORD);
        prev = h;
        have_prev = 1;
    }
#undef ADD
    const uint32_t *sorted = sort_buckets(keys, keys + room, nk, (int)bits);

    int64_t *oi = (int64_t *)v[1].buf;
    float *ov = (float *)v[2].buf;
    const Py_ssize_t cap = count_of(&v[1]) < count_of(&v[2]) ? count_of(&v[1]) : count_of(&v[2]);
    const float *table = (const float *)v[3].buf;
    const Py_ssize_t table_len = count_of(&v[3]);
    const float *idf = has_idf ? (const float *)v[4].buf : NULL;
    Py_ssize_t nu = 0;
    double square = 0.0;
    for (Py_ssize_t i = 0; i < nk;) {
        const uint32_t b = sorted[i];
        Py_ssize_t j = i + 1;
        while (j < nk && sorted[j] == b) j++;
        if (nu == cap) {
            PyErr_Format(PyExc_ValueError, "out_idx/out_vals hold %zd entries, too few for this text's buckets", cap);
            goto done;
        }
        const Py_ssize_t c = j - i;
        float value = c < table_len ? table[c] : log1pf((float)c);
        if (idf) value *= idf[b];
        oi[nu] = (int64_t)b;
        ov[nu++] = value;
        square += (double)value * (double)value;
        i = j;
    }
    if (square > 0.0) {
        /* as numpy: a float32 sum of squares, its square root in double, divided in float32 */
        const float norm = (float)sqrt((double)(float)square);
        for (Py_ssize_t i = 0; i < nu; i++) ov[i] /= norm;
    }
    result = PyLong_FromSsize_t(nu);

done:
    PyMem_Free(keys);
    release_all(v, got);
    return result;
}

static inline int is_digit(uint8_t b) { return b >= 48 && b <= 57; }
static inline int is_choice_letter(Py_UCS4 c) { return (c >= 'A' && c <= 'D') || (c >= 'a' && c <= 'd'); }

/* An answer option starts at s[j + 1]: "A. " / "(b) " (the lookahead of featurizers._CHOICE_LINE; \s is
   Unicode whitespace, as in a str regex). */
static int choice_at(int kind, const void *data, Py_ssize_t j, Py_ssize_t end) {
    if (j + 1 < end && PyUnicode_READ(kind, data, j + 1) == '(') j++;
    return j + 3 < end && is_choice_letter(PyUnicode_READ(kind, data, j + 1)) &&
           (PyUnicode_READ(kind, data, j + 2) == '.' || PyUnicode_READ(kind, data, j + 2) == ')') &&
           Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, j + 3));
}

static double min_d(double a, double b) { return a < b ? a : b; }

/* dense_features(text, raw, full_chars, out) -> None
   The structure features of featurizers._dense_values (every one, in DENSE_NAMES order) for the bounded text,
   its lower-cased UTF-8 bytes and the focused length before the cut, written to out: float32[18]. Same
   counts, same double arithmetic and the same libm log1p, so the results equal the Python ones exactly. */
static PyObject *dense_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "dense_features takes 4 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *text = args[0];
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text: expected str");
        return NULL;
    }
    const Py_ssize_t full_chars = PyLong_AsSsize_t(args[2]);
    if (full_chars == -1 && PyErr_Occurred()) return NULL;
    Py_buffer v[2];
    if (PyObject_GetBuffer(args[1], &v[0], PyBUF_SIMPLE) != 0) return NULL;
    if (get_array(args[3], &v[1], "out", 'f', 4, 1)) {
        PyBuffer_Release(&v[0]);
        return NULL;
    }
    if (count_of(&v[1]) != 18) {
        PyErr_SetString(PyExc_ValueError, "out: expected 18 entries (DENSE_NAMES)");
        release_all(v, 2);
        return NULL;
    }
    const uint8_t *d = (const uint8_t *)v[0].buf;
    const Py_ssize_t size = v[0].len;
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t chars = PyUnicode_GET_LENGTH(text);

    Py_ssize_t spaces = 0, newlines = 0, digits = 0, code = 0, questions = 0, maths = 0, punct = 0, letters = 0;
    Py_ssize_t money = 0, sentences = 0, fences = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        const uint8_t b = d[i];
        if (b == ' ') spaces++;
        else if (b == '\n') newlines++;
        if (is_digit(b)) digits++;
        else if (b >= 'a' && b <= 'z') letters++;
        if (b == '{' || b == '}' || b == ';') code++;
        if (b == '?') questions++;
        if (b == '=' || b == '+' || b == '^' || b == '*' || b == '/' || b == '<' || b == '>') maths++;
        if ((b >= 33 && b <= 47) || (b >= 58 && b <= 64)) punct++;
        if (b == '%' || b == '$') money++;
        if ((b == '.' || b == '?' || b == '!') && i + 1 < size && (d[i + 1] == ' ' || d[i + 1] == '\n')) sentences++;
    }
    for (Py_ssize_t i = 0; i + 3 <= size;) { /* non-overlapping, as bytes.count */
        if (d[i] == '`' && d[i + 1] == '`' && d[i + 2] == '`') {
            fences++;
            i += 3;
        } else {
            i++;
        }
    }
    /* numbers: \d+(?:[.,]\d+)* left to right, non-overlapping */
    Py_ssize_t numbers = 0, longest = 0, decimals = 0, distinct = 0;
    Py_ssize_t first_at[64], first_len[64];
    for (Py_ssize_t i = 0; digits && i < size;) {
        if (!is_digit(d[i])) {
            i++;
            continue;
        }
        const Py_ssize_t start = i;
        while (i < size && is_digit(d[i])) i++;
        while (i + 1 < size && (d[i] == '.' || d[i] == ',') && is_digit(d[i + 1])) {
            if (d[i] == '.') decimals++;
            i++;
            while (i < size && is_digit(d[i])) i++;
        }
        const Py_ssize_t len = i - start;
        if (len > longest) longest = len;
        if (numbers < 64) {
            int seen = 0;
            for (Py_ssize_t k = 0; k < numbers && !seen; k++)
                seen = first_len[k] == len && memcmp(d + first_at[k], d + start, (size_t)len) == 0;
            distinct += !seen;
            first_at[numbers] = start;
            first_len[numbers] = len;
        }
        numbers++;
    }
    Py_ssize_t upper = 0; /* ASCII capitals among the first 300 characters */
    for (Py_ssize_t i = 0; i < chars && i < 300; i++) {
        const Py_UCS4 c = PyUnicode_READ(kind, data, i);
        upper += c >= 'A' && c <= 'Z';
    }
    /* answer options: "\n" + text[-1500:], a virtual newline before the slice */
    const Py_ssize_t from = chars > 1500 ? chars - 1500 : 0;
    Py_ssize_t choices = choice_at(kind, data, from - 1, chars);
    for (Py_ssize_t j = from; j < chars; j++)
        if (PyUnicode_READ(kind, data, j) == '\n') choices += choice_at(kind, data, j, chars);

    const Py_ssize_t n = size > 1 ? size : 1;
    const double scale = (double)(full_chars > 1 ? full_chars : 1) / (double)(chars > 1 ? chars : 1);
    const Py_ssize_t words = spaces + newlines + 1;
    const double values[18] = {
        log1p((double)n * scale) / 10.0,
        log1p((double)words * scale) / 8.0,
        min_d(newlines * 1000.0 / (double)n, 50.0) / 50.0,
        (double)digits / (double)n,
        (double)upper / (double)(chars < 300 ? (chars > 1 ? chars : 1) : 300),
        (double)punct / (double)n,
        min_d((double)questions, 10.0) / 10.0,
        min_d((double)maths, 50.0) / 50.0,
        min_d((double)(code + 4 * fences), 20.0) / 20.0,
        min_d((double)choices, 8.0) / 8.0,
        (double)letters / (double)words / 10.0,
        min_d((double)numbers, 20.0) / 20.0,
        min_d((double)distinct, 20.0) / 20.0,
        min_d((double)longest, 10.0) / 10.0,
        min_d((double)decimals, 5.0) / 5.0,
        min_d((double)money, 5.0) / 5.0,
        min_d((double)(sentences + 1), 20.0) / 20.0,
        1.0,
    };
    float *out = (float *)v[1].buf;
    for (int k = 0; k < 18; k++) out[k] = (float)values[k];
    release_all(v, 2);
    Py_RETURN_NONE;
}

/* Scorer(weights, dense_weights, bias, scale, shift, trees, blend): one predictor's arrays, checked once and held
   (as buffers) for the object's life, so a prediction parses only its own three inputs.
   weights: float32[dim, m]; dense_weights: float32[nd, m]; bias, scale, shift: float64[m] (the linear stage and
   its Platt step). trees: None, or (feature int32, threshold float64, left int32, right int32, value float64,
   baseline float64, depth) as predictors.stacked.TreeEnsemble holds them, over (every model's logit, dense).
   blend: weight of the trees' probability against the linear stage's (1: trees only).

   predict(idx, vals, dense, out): idx int64[n], vals float32[n], dense float32[nd], out float64[m] <- each
   model's probability, as LinearPredictor.predict / StackedPredictor.predict compute it. */

enum { W, DW, BIAS, SCALE, SHIFT, FEATURE, THRESHOLD, LEFT, RIGHT, VALUE, BASELINE, N_ARRAYS };

typedef struct {
    PyObject_HEAD
    Py_buffer view[N_ARRAYS];
    int held[N_ARRAYS];
    Py_ssize_t m, dim, nd, n_trees, n_nodes;
    long depth;
    int has_trees;
    double blend;
} Scorer;

static void Scorer_dealloc(Scorer *self) {
    for (int i = 0; i < N_ARRAYS; i++)
        if (self->held[i]) PyBuffer_Release(&self->view[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static double logistic(double z) {
    z = z < -30.0 ? -30.0 : z > 30.0 ? 30.0 : z; /* as predictors.base.sigmoid; NaN stays NaN */
    return 1.0 / (1.0 + exp(-z));
}

static int Scorer_hold(Scorer *self, int slot, PyObject *obj, const char *name, char kind, Py_ssize_t itemsize) {
    if (get_array(obj, &self->view[slot], name, kind, itemsize, 0)) return -1;
    self->held[slot] = 1;
    return 0;
}

static int Scorer_init(Scorer *self, PyObject *args, PyObject *kwargs) {
    PyObject *w, *dw, *bias, *scale, *shift, *trees;
    double blend;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Scorer takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOOOOd:Scorer", &w, &dw, &bias, &scale, &shift, &trees, &blend)) return -1;
    for (int i = 0; i < N_ARRAYS; i++) /* a second __init__ call replaces everything */
        if (self->held[i]) {
            PyBuffer_Release(&self->view[i]);
            self->held[i] = 0;
        }
    if (Scorer_hold(self, W, w, "weights", 'f', 4) || Scorer_hold(self, DW, dw, "dense_weights", 'f', 4) ||
        Scorer_hold(self, BIAS, bias, "bias", 'f', 8) || Scorer_hold(self, SCALE, scale, "scale", 'f', 8) ||
        Scorer_hold(self, SHIFT, shift, "shift", 'f', 8))
        return -1;
    const Py_ssize_t m = count_of(&self->view[BIAS]);
    if (m == 0 || self->view[W].ndim != 2 || self->view[W].shape[1] != m || self->view[DW].ndim != 2 ||
        self->view[DW].shape[1] != m || count_of(&self->view[SCALE]) != m || count_of(&self->view[SHIFT]) != m) {
        PyErr_SetString(PyExc_ValueError, "Scorer: weights (dim, m), dense_weights (nd, m), bias/scale/shift (m,) disagree");
        return -1;
    }
    self->m = m;
    self->dim = self->view[W].shape[0];
    self->nd = self->view[DW].shape[0];
    self->has_trees = trees != Py_None;
    self->blend = blend;
    if (!(blend >= 0.0 && blend <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "Scorer: blend must be in [0, 1], got %g", blend);
        return -1;
    }
    if (!self->has_trees) return 0;
    PyObject *feature, *threshold, *left, *right, *value, *baseline;
    if (!PyArg_ParseTuple(trees, "OOOOOOl:trees", &feature, &threshold, &left, &right, &value, &baseline, &self->depth))
        return -1;
    if (Scorer_hold(self, FEATURE, feature, "feature", 'i', 4) || Scorer_hold(self, THRESHOLD, threshold, "threshold", 'f', 8) ||
        Scorer_hold(self, LEFT, left, "left", 'i', 4) || Scorer_hold(self, RIGHT, right, "right", 'i', 4) ||
        Scorer_hold(self, VALUE, value, "value", 'f', 8) || Scorer_hold(self, BASELINE, baseline, "baseline", 'f', 8))
        return -1;
    const Py_buffer *f = &self->view[FEATURE];
    const Py_ssize_t total = count_of(f);
    if (f->ndim != 3 || f->shape[0] != m || count_of(&self->view[BASELINE]) != m || self->depth < 0 ||
        count_of(&self->view[THRESHOLD]) != total || count_of(&self->view[LEFT]) != total ||
        count_of(&self->view[RIGHT]) != total || count_of(&self->view[VALUE]) != total) {
        PyErr_SetString(PyExc_ValueError, "Scorer: tree arrays must share one (m, trees, nodes) shape");
        return -1;
    }
    self->n_trees = f->shape[1];
    self->n_nodes = f->shape[2];
    /* Check every node once here, so predict can walk the trees without bounds checks. */
    const int32_t *feat = (const int32_t *)f->buf, *l = (const int32_t *)self->view[LEFT].buf,
                  *r = (const int32_t *)self->view[RIGHT].buf;
    for (Py_ssize_t i = 0; i < total; i++) {
        if (feat[i] < 0 || feat[i] >= m + self->nd) {
            PyErr_Format(PyExc_ValueError, "Scorer: tree feature %d outside [0, %zd)", (int)feat[i], m + self->nd);
            return -1;
        }
        if (l[i] < 0 || l[i] >= self->n_nodes || r[i] < 0 || r[i] >= self->n_nodes) {
            PyErr_Format(PyExc_ValueError, "Scorer: tree child node %d/%d outside [0, %zd)", (int)l[i], (int)r[i],
                         self->n_nodes);
            return -1;
        }
    }
    return 0;
}

static PyObject *Scorer_predict(Scorer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "predict takes 4 arguments, got %zd", nargs);
        return NULL;
    }
    if (!self->held[W]) {
        PyErr_SetString(PyExc_ValueError, "Scorer was not initialised");
        return NULL;
    }
    static const char *names[4] = {"idx", "vals", "dense", "out"};
    static const char kinds[4] = {'i', 'f', 'f', 'f'};
    static const Py_ssize_t sizes[4] = {8, 4, 4, 8};
    Py_buffer v[4];
    int got = 0;
    double stack_inputs[64];
    double *inputs = stack_inputs; /* the trees' input row: every model's logit, then the dense features */
    PyObject *result = NULL;
    for (; got < 4; got++)
        if (get_array(args[got], &v[got], names[got], kinds[got], sizes[got], got == 3)) goto done;
    const Py_ssize_t m = self->m, nd = self->nd, n = count_of(&v[0]);
    if (count_of(&v[1]) != n || count_of(&v[2]) != nd || count_of(&v[3]) != m) {
        PyErr_Format(PyExc_ValueError, "predict: expected idx and vals of one length, %zd dense features, out of %zd", nd, m);
        goto done;
    }
    if (m + nd > 64 && !(inputs = (double *)PyMem_Malloc((size_t)(m + nd) * sizeof(double)))) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *idx = (const int64_t *)v[0].buf;
    const float *vals = (const float *)v[1].buf, *dense = (const float *)v[2].buf;
    const float *w = (const float *)self->view[W].buf, *dw = (const float *)self->view[DW].buf;
    double *out = (double *)v[3].buf;
    for (Py_ssize_t j = 0; j < m; j++) inputs[j] = ((const double *)self->view[BIAS].buf)[j];
    for (Py_ssize_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= self->dim) {
            PyErr_Format(PyExc_IndexError, "predict: bucket %lld outside [0, %zd)", (long long)idx[i], self->dim);
            goto done;
        }
        const float *row = w + idx[i] * m;
        const double value = vals[i];
        for (Py_ssize_t j = 0; j < m; j++) inputs[j] += value * row[j];
    }
    for (Py_ssize_t k = 0; k < nd; k++) {
        const float *row = dw + k * m;
        const double value = dense[k];
        for (Py_ssize_t j = 0; j < m; j++) inputs[j] += value * row[j];
        inputs[m + k] = value;
    }
    const double *scale = (const double *)self->view[SCALE].buf, *shift = (const double *)self->view[SHIFT].buf;
    for (Py_ssize_t j = 0; j < m; j++) out[j] = logistic(scale[j] * inputs[j] + shift[j]);
    if (self->has_trees) {
        const int32_t *feature = (const int32_t *)self->view[FEATURE].buf;
        const int32_t *left = (const int32_t *)self->view[LEFT].buf, *right = (const int32_t *)self->view[RIGHT].buf;
        const double *threshold = (const double *)self->view[THRESHOLD].buf;
        const double *value = (const double *)self->view[VALUE].buf;
        const double *baseline = (const double *)self->view[BASELINE].buf;
        for (Py_ssize_t j = 0; j < m; j++) {
            double sum = 0.0;
            for (Py_ssize_t t = 0; t < self->n_trees; t++) {
                const Py_ssize_t base = (j * self->n_trees + t) * self->n_nodes;
                int32_t node = 0;
                for (long level = 0; level < self->depth; level++) {
                    const Py_ssize_t at = base + node;
                    node = inputs[feature[at]] <= threshold[at] ? left[at] : right[at];
                }
                sum += value[base + node];
            }
            const double trees = logistic(baseline[j] + sum);
            out[j] = self->blend == 1.0 ? trees : self->blend * trees + (1.0 - self->blend) * out[j];
        }
    }
    result = Py_None;
    Py_INCREF(result);

done:
    if (inputs != stack_inputs) PyMem_Free(inputs);
    release_all(v, got);
    return result;
}

static PyMethodDef Scorer_methods[] = {
    {"predict", (PyCFunction)(void (*)(void))Scorer_predict, METH_FASTCALL,
     "predict(idx, vals, dense, out): each model's probability for one featurised prompt, into out."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tierroute.policies.kernels._kernels.Scorer",
    .tp_basicsize = sizeof(Scorer),
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One trained predictor's arrays (linear stage, optional trees), held for fast single predictions.",
    .tp_methods = Scorer_methods,
    .tp_init = (initproc)Scorer_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef methods[] = {
    {"hash_features", (PyCFunction)(void (*)(void))hash_features, METH_FASTCALL,
     "Hashed n-gram buckets and their normalised weights for one lower-cased UTF-8 text."},
    {"dense_features", (PyCFunction)(void (*)(void))dense_features, METH_FASTCALL,
     "The structure features (DENSE_NAMES) of one bounded text."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_kernels",
    .m_doc = "Compiled hot-path kernels for tierroute's learned router.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (PyType_Ready(&ScorerType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (!mod) return NULL;
    Py_INCREF(&ScorerType);
    if (PyModule_AddObject(mod, "Scorer", (PyObject *)&ScorerType) < 0) {
        Py_DECREF(&ScorerType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
