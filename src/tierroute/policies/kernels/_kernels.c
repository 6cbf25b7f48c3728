/* Compiled hot-path kernels for the learned router (optional; numpy implementations are the fallback).

A trained router's decision in numpy is ~75 small array calls, each paying Python and numpy dispatch overhead
that dwarfs its arithmetic; in a busy gateway that overhead triples (caches are cold between requests). These
functions do the same arithmetic in one call each:

  hash_features   hashed word/bigram/char n-gram counts -> (bucket, log1p(count) * idf), sorted, L2-normalised
  dense_features  the structure features (DENSE_NAMES) in one pass: exactly the Python values
  Scorer          a trained predictor's arrays, held once; .predict gives every model's probability for one
                  featurised prompt: the linear stage with its Platt step, and the second-stage trees and
                  blend if any. Given the featurizer's settings too, .predict_text goes from the prompt's text
                  to the probabilities and structure features in one call, with no numpy array in between.

The hashes are bit-for-bit those of featurizers.HashingFeaturizer (same polynomial, salts and bucket fold), so
a router trained on either path runs on either. Floating-point sums may differ from numpy's in the last bits
(different summation order): tests compare with a tolerance.

Arguments are objects exposing the buffer protocol (numpy arrays, bytes), checked for item type, size and
C-contiguity; nothing here needs numpy's headers. The GIL is held throughout: every call takes microseconds.
Nothing keeps state between calls. */

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

/* What hash_features needs besides the text: the featurizer's settings and fitted tables. */
typedef struct {
    int bits;
    Py_ssize_t n_kinds;
    long kinds[16]; /* char n-gram lengths */
    int word_bigrams;
    const float *log1p; /* log1p(count) table */
    Py_ssize_t log1p_len;
    const float *idf; /* per-bucket idf, or NULL */
} HashSpec;

/* Read (log1p, idf, bits, ngrams, word_bigrams) into `spec`, holding the two tables in views[0..1]
   (*held says how many). Returns 0, or -1 with an exception naming the argument. */
static int parse_hash_spec(PyObject *const *args, HashSpec *spec, Py_buffer *views, int *held) {
    *held = 0;
    const long bits = PyLong_AsLong(args[2]);
    const int word_bigrams = PyObject_IsTrue(args[4]);
    if (PyErr_Occurred()) return -1;
    if (bits < 1 || bits > 30) {
        PyErr_Format(PyExc_ValueError, "bits must be in [1, 30], got %ld", bits);
        return -1;
    }
    if (!PyTuple_Check(args[3]) || PyTuple_GET_SIZE(args[3]) > 16) {
        PyErr_SetString(PyExc_TypeError, "ngrams: expected a tuple of at most 16 ints");
        return -1;
    }
    spec->bits = (int)bits;
    spec->word_bigrams = word_bigrams;
    spec->n_kinds = PyTuple_GET_SIZE(args[3]);
    for (Py_ssize_t i = 0; i < spec->n_kinds; i++) {
        spec->kinds[i] = PyLong_AsLong(PyTuple_GET_ITEM(args[3], i));
        if (spec->kinds[i] == -1 && PyErr_Occurred()) return -1;
        if (spec->kinds[i] < 1) {
            PyErr_Format(PyExc_ValueError, "ngrams: lengths must be positive, got %ld", spec->kinds[i]);
            return -1;
        }
    }
    if (get_array(args[0], &views[0], "log1p", 'f', 4, 0)) return -1;
    *held = 1;
    spec->log1p = (const float *)views[0].buf;
    spec->log1p_len = count_of(&views[0]);
    spec->idf = NULL;
    if (args[1] != Py_None) {
        if (get_array(args[1], &views[1], "idf", 'f', 4, 0)) return -1;
        *held = 2;
        if (count_of(&views[1]) != ((Py_ssize_t)1 << bits)) {
            PyErr_Format(PyExc_ValueError, "idf: expected 2**%ld entries, got %zd", bits, count_of(&views[1]));
            return -1;
        }
        spec->idf = (const float *)views[1].buf;
    }
    return 0;
}

/* At most this many hashes for n bytes: every char n-gram kind, the words and the bigrams yield at most n each. */
static Py_ssize_t max_hashes(const HashSpec *spec, Py_ssize_t n) { return n * (spec->n_kinds + 2) + 1; }

/* At most this many distinct buckets for n bytes. */
static Py_ssize_t bucket_room(const HashSpec *spec, Py_ssize_t n) {
    const Py_ssize_t hashes = max_hashes(spec, n), dim = (Py_ssize_t)1 << spec->bits;
    return hashes < dim ? hashes : dim;
}

/* The distinct buckets of the lower-cased UTF-8 text d[0..n) (ascending) and their L2-normalised weights
   log1p(count) * idf, into oi/ov (room for cap). Returns how many, or -1 with an exception set. */
static Py_ssize_t hash_core(const HashSpec *spec, const uint8_t *d, Py_ssize_t n, int64_t *oi, float *ov,
                            Py_ssize_t cap) {
    const Py_ssize_t room = max_hashes(spec, n);
    uint32_t *keys = (uint32_t *)PyMem_Malloc((size_t)room * 2 * sizeof(uint32_t));
    if (!keys) {
        PyErr_NoMemory();
        return -1;
    }
    const int shift = 64 - spec->bits;
    Py_ssize_t nk = 0;
#define ADD(hash) (keys[nk++] = (uint32_t)(((uint64_t)(hash) * MIX) >> shift))
    for (Py_ssize_t t = 0; t < spec->n_kinds; t++) {
        const Py_ssize_t k = spec->kinds[t];
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
        if (have_prev && spec->word_bigrams) ADD((prev * MIX + h) ^ SALT_BIGRAM);
        ADD(h ^ SALT_WORD);
        prev = h;
        have_prev = 1;
    }
#undef ADD
    const uint32_t *sorted = sort_buckets(keys, keys + room, nk, spec->bits);
    Py_ssize_t nu = 0;
    double square = 0.0;
    for (Py_ssize_t i = 0; i < nk;) {
        const uint32_t b = sorted[i];
        Py_ssize_t j = i + 1;
        while (j < nk && sorted[j] == b) j++;
        if (nu == cap) {
            PyMem_Free(keys);
            PyErr_Format(PyExc_ValueError, "out_idx/out_vals hold %zd entries, too few for this text's buckets", cap);
            return -1;
        }
        const Py_ssize_t c = j - i;
        float value = c < spec->log1p_len ? spec->log1p[c] : log1pf((float)c);
        if (spec->idf) value *= spec->idf[b];
        oi[nu] = (int64_t)b;
        ov[nu++] = value;
        square += (double)value * (double)value;
        i = j;
    }
    PyMem_Free(keys);
    if (square > 0.0) {
        /* as numpy: a float32 sum of squares, its square root in double, divided in float32 */
        const float norm = (float)sqrt((double)(float)square);
        for (Py_ssize_t i = 0; i < nu; i++) ov[i] /= norm;
    }
    return nu;
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
    HashSpec spec;
    Py_buffer tables[2], v[3];
    int held_tables = 0, got = 0;
    PyObject *result = NULL;
    if (parse_hash_spec(args + 3, &spec, tables, &held_tables)) goto done;
    if (PyObject_GetBuffer(args[0], &v[0], PyBUF_SIMPLE) != 0) goto done;
    got = 1;
    if (get_array(args[1], &v[1], "out_idx", 'i', 8, 1)) goto done;
    got = 2;
    if (get_array(args[2], &v[2], "out_vals", 'f', 4, 1)) goto done;
    got = 3;
    const Py_ssize_t cap = count_of(&v[1]) < count_of(&v[2]) ? count_of(&v[1]) : count_of(&v[2]);
    const Py_ssize_t nu = hash_core(&spec, (const uint8_t *)v[0].buf, v[0].len, (int64_t *)v[1].buf,
                                    (float *)v[2].buf, cap);
    if (nu >= 0) result = PyLong_FromSsize_t(nu);

done:
    release_all(v, got);
    release_all(tables, held_tables);
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

#define N_DENSE 18

/* The structure features of featurizers._dense_values (every one, in DENSE_NAMES order) for the bounded text,
   its lower-cased UTF-8 bytes d[0..size) and the focused length before the cut. Same counts, same double
   arithmetic and the same libm log1p, then rounded to float32 as numpy stores them: equal to the Python ones. */
static void dense_core(PyObject *text, const uint8_t *d, Py_ssize_t size, Py_ssize_t full_chars, float *out) {
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
    const double values[N_DENSE] = {
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
    for (int k = 0; k < N_DENSE; k++) out[k] = (float)values[k];
}

/* The (text, raw, full_chars) arguments: the bounded text (str), its lower-cased UTF-8 bytes (held in *raw on
   success) and the focused length before the cut. Returns 0, or -1 with an exception. */
static int parse_text(PyObject *const *args, Py_buffer *raw, Py_ssize_t *full_chars) {
    if (!PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "text: expected str");
        return -1;
    }
    *full_chars = PyLong_AsSsize_t(args[2]);
    if (*full_chars == -1 && PyErr_Occurred()) return -1;
    return PyObject_GetBuffer(args[1], raw, PyBUF_SIMPLE);
}

/* dense_features(text, raw, full_chars, out) -> None: dense_core into out, float32[18]. */
static PyObject *dense_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "dense_features takes 4 arguments, got %zd", nargs);
        return NULL;
    }
    Py_ssize_t full_chars;
    Py_buffer v[2];
    if (parse_text(args, &v[0], &full_chars)) return NULL;
    if (get_array(args[3], &v[1], "out", 'f', 4, 1)) {
        PyBuffer_Release(&v[0]);
        return NULL;
    }
    PyObject *result = NULL;
    if (count_of(&v[1]) != N_DENSE) {
        PyErr_SetString(PyExc_ValueError, "out: expected 18 entries (DENSE_NAMES)");
    } else {
        dense_core(args[0], (const uint8_t *)v[0].buf, v[0].len, full_chars, (float *)v[1].buf);
        result = Py_None;
        Py_INCREF(result);
    }
    release_all(v, 2);
    return result;
}

/* Scorer(weights, dense_weights, bias, scale, shift, trees, blend, featurizer=None): one predictor, checked once
   and held for the object's life, so a prediction parses only its own inputs.
   weights: float32[dim, m]; dense_weights: float32[nd, m]; bias, scale, shift: float64[m] (the linear stage and
   its Platt step). trees: None, or (feature int32, threshold float64, left int32, right int32, value float64,
   baseline float64, depth) as predictors.stacked.TreeEnsemble holds them, over (every model's logit, dense);
   copied here into one node array (a node's split and children on one cache line, not five arrays' lines).
   blend: weight of the trees' probability against the linear stage's (1: trees only).
   featurizer: None, or (log1p, idf, bits, ngrams, word_bigrams) as hash_features takes them, for predict_text.

   predict(idx, vals, dense, out): idx int64[n], vals float32[n], dense float32[nd], out float64[m] <- each
   model's probability, as LinearPredictor.predict / StackedPredictor.predict compute it.
   predict_text(text, raw, full_chars) -> (probabilities, structure features), two lists of floats: hash_features,
   dense_features and predict in one call (needs the featurizer, 2**bits == dim and nd == 18). */

enum { W, DW, BIAS, SCALE, SHIFT, LOG1P, IDF, N_HELD };

typedef struct {
    double threshold, value;
    int32_t feature, left, right, unused;
} Node;

typedef struct {
    PyObject_HEAD
    Py_buffer view[N_HELD];
    int held[N_HELD];
    Py_ssize_t m, dim, nd, n_trees, n_nodes;
    long depth;
    Node *nodes; /* (m, n_trees, n_nodes), or NULL without trees */
    double *baseline;
    double blend;
    int has_spec;
    HashSpec spec;
} Scorer;

static void Scorer_clear(Scorer *self) {
    for (int i = 0; i < N_HELD; i++)
        if (self->held[i]) {
            PyBuffer_Release(&self->view[i]);
            self->held[i] = 0;
        }
    PyMem_Free(self->nodes);
    PyMem_Free(self->baseline);
    self->nodes = NULL;
    self->baseline = NULL;
    self->has_spec = 0;
}

static void Scorer_dealloc(Scorer *self) {
    Scorer_clear(self);
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

/* Copy the trees' six arrays into self->nodes, checking every index once so predictions need no bounds checks. */
static int Scorer_take_trees(Scorer *self, PyObject *trees) {
    PyObject *objs[6];
    if (!PyArg_ParseTuple(trees, "OOOOOOl:trees", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &self->depth))
        return -1;
    static const char *names[6] = {"feature", "threshold", "left", "right", "value", "baseline"};
    static const char kinds[6] = {'i', 'f', 'i', 'i', 'f', 'f'};
    static const Py_ssize_t sizes[6] = {4, 8, 4, 4, 8, 8};
    Py_buffer v[6];
    int got = 0, status = -1;
    for (; got < 6; got++)
        if (get_array(objs[got], &v[got], names[got], kinds[got], sizes[got], 0)) goto done;
    const Py_ssize_t m = self->m, total = count_of(&v[0]);
    if (v[0].ndim != 3 || v[0].shape[0] != m || count_of(&v[5]) != m || self->depth < 0 ||
        count_of(&v[1]) != total || count_of(&v[2]) != total || count_of(&v[3]) != total || count_of(&v[4]) != total) {
        PyErr_SetString(PyExc_ValueError, "Scorer: tree arrays must share one (m, trees, nodes) shape");
        goto done;
    }
    self->n_trees = v[0].shape[1];
    self->n_nodes = v[0].shape[2];
    if (self->n_trees > 0 && self->n_nodes < 1) {
        PyErr_SetString(PyExc_ValueError, "Scorer: trees need at least one node");
        goto done;
    }
    self->nodes = (Node *)PyMem_Malloc((size_t)(total > 0 ? total : 1) * sizeof(Node));
    self->baseline = (double *)PyMem_Malloc((size_t)m * sizeof(double));
    if (!self->nodes || !self->baseline) {
        PyErr_NoMemory();
        goto done;
    }
    const int32_t *feature = (const int32_t *)v[0].buf, *left = (const int32_t *)v[2].buf,
                  *right = (const int32_t *)v[3].buf;
    const double *threshold = (const double *)v[1].buf, *value = (const double *)v[4].buf;
    for (Py_ssize_t i = 0; i < total; i++) {
        if (feature[i] < 0 || feature[i] >= m + self->nd) {
            PyErr_Format(PyExc_ValueError, "Scorer: tree feature %d outside [0, %zd)", (int)feature[i], m + self->nd);
            goto done;
        }
        if (left[i] < 0 || left[i] >= self->n_nodes || right[i] < 0 || right[i] >= self->n_nodes) {
            PyErr_Format(PyExc_ValueError, "Scorer: tree child node %d/%d outside [0, %zd)", (int)left[i],
                         (int)right[i], self->n_nodes);
            goto done;
        }
        self->nodes[i] = (Node){threshold[i], value[i], feature[i], left[i], right[i], 0};
    }
    memcpy(self->baseline, v[5].buf, (size_t)m * sizeof(double));
    status = 0;

done:
    release_all(v, got);
    return status;
}

static int Scorer_init(Scorer *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"weights", "dense_weights", "bias", "scale", "shift", "trees", "blend", "featurizer", NULL};
    PyObject *w, *dw, *bias, *scale, *shift, *trees, *featurizer = Py_None;
    double blend;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOd|O:Scorer", keywords, &w, &dw, &bias, &scale, &shift,
                                     &trees, &blend, &featurizer))
        return -1;
    Scorer_clear(self); /* a second __init__ replaces everything */
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
    if (!(blend >= 0.0 && blend <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "Scorer: blend must be in [0, 1], got %g", blend);
        return -1;
    }
    self->blend = blend;
    if (trees != Py_None && Scorer_take_trees(self, trees)) return -1;
    if (featurizer == Py_None) return 0;
    if (!PyTuple_Check(featurizer) || PyTuple_GET_SIZE(featurizer) != 5) {
        PyErr_SetString(PyExc_TypeError, "Scorer: featurizer must be (log1p, idf, bits, ngrams, word_bigrams)");
        return -1;
    }
    int held = 0;
    const int failed = parse_hash_spec(&PyTuple_GET_ITEM(featurizer, 0), &self->spec, &self->view[LOG1P], &held);
    self->held[LOG1P] = held >= 1;
    self->held[IDF] = held >= 2;
    if (failed) return -1;
    if (((Py_ssize_t)1 << self->spec.bits) != self->dim || self->nd != N_DENSE) {
        PyErr_Format(PyExc_ValueError, "Scorer: the featurizer gives 2**%d buckets and %d structure features, the "
                     "weights expect %zd and %zd", self->spec.bits, N_DENSE, self->dim, self->nd);
        return -1;
    }
    self->has_spec = 1;
    return 0;
}

/* Each model's probability into out[m]. idx must lie in [0, dim) (the caller checks); inputs has m + nd slots. */
static void score_core(const Scorer *self, const int64_t *idx, const float *vals, Py_ssize_t n, const float *dense,
                       double *inputs, double *out) {
    const Py_ssize_t m = self->m, nd = self->nd;
    const float *w = (const float *)self->view[W].buf, *dw = (const float *)self->view[DW].buf;
    for (Py_ssize_t j = 0; j < m; j++) inputs[j] = ((const double *)self->view[BIAS].buf)[j];
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *row = w + idx[i] * m;
        const double value = vals[i];
        for (Py_ssize_t j = 0; j < m; j++) inputs[j] += value * row[j];
    }
    for (Py_ssize_t k = 0; k < nd; k++) { /* the trees' input row: every model's logit, then the dense features */
        const float *row = dw + k * m;
        const double value = dense[k];
        for (Py_ssize_t j = 0; j < m; j++) inputs[j] += value * row[j];
        inputs[m + k] = value;
    }
    const double *scale = (const double *)self->view[SCALE].buf, *shift = (const double *)self->view[SHIFT].buf;
    for (Py_ssize_t j = 0; j < m; j++) out[j] = logistic(scale[j] * inputs[j] + shift[j]);
    if (!self->nodes) return;
    for (Py_ssize_t j = 0; j < m; j++) {
        double sum = 0.0;
        for (Py_ssize_t t = 0; t < self->n_trees; t++) {
            const Node *tree = self->nodes + (j * self->n_trees + t) * self->n_nodes;
            const Node *node = tree;
            for (long level = 0; level < self->depth; level++)
                node = tree + (inputs[node->feature] <= node->threshold ? node->left : node->right);
            sum += node->value;
        }
        const double trees = logistic(self->baseline[j] + sum);
        out[j] = self->blend == 1.0 ? trees : self->blend * trees + (1.0 - self->blend) * out[j];
    }
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
    double *inputs = NULL;
    PyObject *result = NULL;
    for (; got < 4; got++)
        if (get_array(args[got], &v[got], names[got], kinds[got], sizes[got], got == 3)) goto done;
    const Py_ssize_t n = count_of(&v[0]);
    if (count_of(&v[1]) != n || count_of(&v[2]) != self->nd || count_of(&v[3]) != self->m) {
        PyErr_Format(PyExc_ValueError, "predict: expected idx and vals of one length, %zd dense features, out of %zd",
                     self->nd, self->m);
        goto done;
    }
    const int64_t *idx = (const int64_t *)v[0].buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= self->dim) {
            PyErr_Format(PyExc_IndexError, "predict: bucket %lld outside [0, %zd)", (long long)idx[i], self->dim);
            goto done;
        }
    if (!(inputs = (double *)PyMem_Malloc((size_t)(self->m + self->nd) * sizeof(double)))) {
        PyErr_NoMemory();
        goto done;
    }
    score_core(self, idx, (const float *)v[1].buf, n, (const float *)v[2].buf, inputs, (double *)v[3].buf);
    result = Py_None;
    Py_INCREF(result);

done:
    PyMem_Free(inputs);
    release_all(v, got);
    return result;
}

static PyObject *float_list(const double *values, const float *floats, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyFloat_FromDouble(values ? values[i] : (double)floats[i]);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *Scorer_predict_text(Scorer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "predict_text takes 3 arguments, got %zd", nargs);
        return NULL;
    }
    if (!self->has_spec) {
        PyErr_SetString(PyExc_ValueError, "predict_text needs a Scorer built with its featurizer");
        return NULL;
    }
    Py_ssize_t full_chars;
    Py_buffer raw;
    if (parse_text(args, &raw, &full_chars)) return NULL;
    const Py_ssize_t room = bucket_room(&self->spec, raw.len);
    /* one block: bucket ids, their weights, the dense features, the trees' inputs, the probabilities */
    const size_t bytes = (size_t)room * (sizeof(int64_t) + sizeof(float)) + N_DENSE * sizeof(float) +
                         (size_t)(2 * self->m + self->nd) * sizeof(double);
    char *block = (char *)PyMem_Malloc(bytes);
    PyObject *result = NULL;
    if (!block) {
        PyErr_NoMemory();
        goto done;
    }
    double *inputs = (double *)block, *out = inputs + self->m + self->nd;
    int64_t *idx = (int64_t *)(out + self->m);
    float *vals = (float *)(idx + room), *dense = vals + room;
    const Py_ssize_t n = hash_core(&self->spec, (const uint8_t *)raw.buf, raw.len, idx, vals, room);
    if (n < 0) goto done;
    dense_core(args[0], (const uint8_t *)raw.buf, raw.len, full_chars, dense);
    score_core(self, idx, vals, n, dense, inputs, out);
    PyObject *probabilities = float_list(out, NULL, self->m), *features = float_list(NULL, dense, N_DENSE);
    if (probabilities && features) result = PyTuple_Pack(2, probabilities, features);
    Py_XDECREF(probabilities);
    Py_XDECREF(features);

done:
    PyMem_Free(block);
    PyBuffer_Release(&raw);
    return result;
}

static PyMethodDef Scorer_methods[] = {
    {"predict", (PyCFunction)(void (*)(void))Scorer_predict, METH_FASTCALL,
     "predict(idx, vals, dense, out): each model's probability for one featurised prompt, into out."},
    {"predict_text", (PyCFunction)(void (*)(void))Scorer_predict_text, METH_FASTCALL,
     "predict_text(text, raw, full_chars) -> (probabilities, structure features) for one bounded text."},
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
