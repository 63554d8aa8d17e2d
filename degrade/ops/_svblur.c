/* Exact spatially variant Gaussian blur + direct downsampling (Eq. 1), fused, for one image.
 *
 * The CPU fast path of degrade.ops.blur.apply_kernel_field. For every LR pixel the K x K
 * weights exp(q(dx, dy)) come from exact multiplicative recurrences instead of K*K calls to
 * exp: q is quadratic, so the ratio of neighbouring weights is itself a geometric sequence.
 * Recurrences start at the tap nearest the kernel centre and run outwards (rows, then both
 * halves of each row) in double precision, so no start value underflows while its row still
 * carries weight; the caller checks the sigma bound that guarantees this (see blur.py).
 *
 * LR pixels are processed in tiles of TILE lanes whose whole state (weights, ratios, sums, three
 * accumulators) lives in registers; per tap only the source pixels are read from memory.
 *
 * Determinism: plain IEEE operations in a fixed order (no fast-math, no FP contraction: the build
 * passes -ffp-contract=off), denormals flushed to zero while it runs (restored on exit), libm for
 * the per-pixel start values. Vector width does not change any lane's arithmetic, so every CPU
 * clone gives the same bits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#define TILE 8
#define MAXC 4

/* GCC/Clang vector extensions: lane-wise IEEE arithmetic, compiled to AVX2 or SSE2 pairs. */
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) v4d load4d(const double *p) { v4d v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) v8f to_float(v4d lo, v4d hi) {
    v4f a = __builtin_convertvector(lo, v4f), b = __builtin_convertvector(hi, v4f);
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7);
}
typedef struct {
    double ws, gd, gu, rr, rl, eA, eB, eC;
} PixelStart;

/* Start values and ratios of one LR pixel's recurrences (see the derivation in blur.py). */
static void pixel_start(PixelStart *ps, double s1, double s2, double th, double dc) {
    const double c = cos(th), s = sin(th);
    const double i1 = 1.0 / (s1 * s1), i2 = 1.0 / (s2 * s2);
    const double A = c * c * i1 + s * s * i2;
    const double B = c * s * (i1 - i2);
    const double C = s * s * i1 + c * c * i2;
    /* q(dx, dy) = -0.5 (A dx^2 + 2 B dx dy + C dy^2); the centre tap is at (dc, dc) */
    ps->ws = exp(-0.5 * (A + 2.0 * B + C) * dc * dc);
    ps->gd = exp(-0.5 * (2.0 * B * dc + C * (2.0 * dc + 1.0)));   /* row a -> a+1 */
    ps->gu = exp(-0.5 * (-2.0 * B * dc + C * (1.0 - 2.0 * dc)));  /* row a -> a-1 */
    ps->rr = exp(-0.5 * (A * (2.0 * dc + 1.0) + 2.0 * B * dc));   /* col b -> b+1 */
    ps->rl = exp(-0.5 * (A * (1.0 - 2.0 * dc) - 2.0 * B * dc));   /* col b -> b-1 */
    ps->eA = exp(-A);
    ps->eB = exp(-B);
    ps->eC = exp(-C);
}

/* One tile of n <= TILE LR pixels starting at column j0 of LR row i. Always inlined, so the
 * calls with n == TILE get fixed-size loops that the compiler keeps in vector registers. */
static inline __attribute__((always_inline)) void tile(
    const float *poly, float *out, const PixelStart *ps, int n, int i, int j0, int channels,
    int h, int w, int wq, int ksize, int ac, size_t plane, const size_t *row_off,
    const size_t *col_off) {
    double eA[TILE], eB[TILE], eC[TILE], tot[TILE];
    double ws[TILE], g[TILE], rrow[TILE], lrow[TILE], wv[TILE], rv[TILE];
    float acc[MAXC][TILE];
    for (int l = 0; l < n; l++) {
        eA[l] = ps[l].eA; eB[l] = ps[l].eB; eC[l] = ps[l].eC; tot[l] = 0.0;
        for (int ch = 0; ch < MAXC; ch++) acc[ch][l] = 0.0f;
    }
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: rows ac..K-1 going down; pass 1: rows ac-1..0 going up */
        for (int l = 0; l < n; l++) {
            if (pass == 0) {
                ws[l] = ps[l].ws; g[l] = ps[l].gd; rrow[l] = ps[l].rr; lrow[l] = ps[l].rl;
            } else {
                ws[l] = ps[l].ws * ps[l].gu; g[l] = ps[l].gu * eC[l];
                rrow[l] = ps[l].rr / eB[l]; lrow[l] = ps[l].rl * eB[l];
            }
        }
        const int step = pass == 0 ? 1 : -1;
        for (int a = pass == 0 ? ac : ac - 1; a >= 0 && a < ksize; a += step) {
            const float *row = poly + row_off[a] + (size_t)i * wq + j0;
            for (int half = 0; half < 2; half++) {
                /* half 0: columns ac..K-1 (centre included); half 1: columns ac-1..0 */
                for (int l = 0; l < n; l++) {
                    wv[l] = half == 0 ? ws[l] : ws[l] * lrow[l];
                    rv[l] = half == 0 ? rrow[l] : lrow[l] * eA[l];
                }
                const int bstep = half == 0 ? 1 : -1;
                for (int b = half == 0 ? ac : ac - 1; b >= 0 && b < ksize; b += bstep) {
                    const float *src = row + col_off[b];
                    float wf[TILE];
                    for (int l = 0; l < n; l++) {
                        const double x = wv[l];
                        tot[l] += x;
                        wf[l] = (float)x;
                        wv[l] = x * rv[l];
                        rv[l] *= eA[l];
                    }
                    for (int ch = 0; ch < channels; ch++) {
                        const float *sp = src + ch * plane;
                        for (int l = 0; l < n; l++) acc[ch][l] += wf[l] * sp[l];
                    }
                }
            }
            for (int l = 0; l < n; l++) {
                ws[l] *= g[l];
                g[l] *= eC[l];
                if (step == 1) { rrow[l] *= eB[l]; lrow[l] /= eB[l]; }
                else { rrow[l] /= eB[l]; lrow[l] *= eB[l]; }
            }
        }
    }
    for (int ch = 0; ch < channels; ch++) {
        float *op = out + (size_t)ch * h * w + (size_t)i * w + j0;
        for (int l = 0; l < n; l++) op[l] = (float)((double)acc[ch][l] / tot[l]);
    }
}

/* tile() for exactly 8 pixels and 3 channels, written with vector types: the hot path. */
static inline __attribute__((always_inline)) void tile8x3(
    const float *poly, float *out, const PixelStart *ps, int i, int j0, int h, int w, int wq,
    int ksize, int ac, size_t plane, const size_t *row_off, const size_t *col_off) {
    double tmp[8][8];
    for (int l = 0; l < 8; l++) {
        tmp[0][l] = ps[l].ws; tmp[1][l] = ps[l].gd; tmp[2][l] = ps[l].gu; tmp[3][l] = ps[l].rr;
        tmp[4][l] = ps[l].rl; tmp[5][l] = ps[l].eA; tmp[6][l] = ps[l].eB; tmp[7][l] = ps[l].eC;
    }
    v4d WS[2], GD[2], GU[2], RR[2], RL[2], EA[2], EB[2], EC[2], TOT[2];
    for (int k = 0; k < 2; k++) {
        WS[k] = load4d(tmp[0] + 4 * k); GD[k] = load4d(tmp[1] + 4 * k);
        GU[k] = load4d(tmp[2] + 4 * k); RR[k] = load4d(tmp[3] + 4 * k);
        RL[k] = load4d(tmp[4] + 4 * k); EA[k] = load4d(tmp[5] + 4 * k);
        EB[k] = load4d(tmp[6] + 4 * k); EC[k] = load4d(tmp[7] + 4 * k);
        TOT[k] = (v4d){0.0, 0.0, 0.0, 0.0};
    }
    v8f acc0 = {0}, acc1 = {0}, acc2 = {0};
    for (int pass = 0; pass < 2; pass++) {
        v4d ws[2], g[2], rrow[2], lrow[2];
        for (int k = 0; k < 2; k++) {
            if (pass == 0) { ws[k] = WS[k]; g[k] = GD[k]; rrow[k] = RR[k]; lrow[k] = RL[k]; }
            else {
                ws[k] = WS[k] * GU[k]; g[k] = GU[k] * EC[k];
                rrow[k] = RR[k] / EB[k]; lrow[k] = RL[k] * EB[k];
            }
        }
        const int step = pass == 0 ? 1 : -1;
        for (int a = pass == 0 ? ac : ac - 1; a >= 0 && a < ksize; a += step) {
            const float *row = poly + row_off[a] + (size_t)i * wq + j0;
            for (int half = 0; half < 2; half++) {
                v4d wv[2], rv[2];
                for (int k = 0; k < 2; k++) {
                    wv[k] = half == 0 ? ws[k] : ws[k] * lrow[k];
                    rv[k] = half == 0 ? rrow[k] : lrow[k] * EA[k];
                }
                const int bstep = half == 0 ? 1 : -1;
                v4d w0 = wv[0], w1 = wv[1], r0 = rv[0], r1 = rv[1];
                const v4d ea0 = EA[0], ea1 = EA[1];
                v4d t0 = TOT[0], t1 = TOT[1];
                const int bend = half == 0 ? ksize : -1;
                for (int b = half == 0 ? ac : ac - 1; b != bend; b += bstep) {
                    const float *src = row + col_off[b];
                    const v8f wf = to_float(w0, w1);
                    t0 += w0;
                    t1 += w1;
                    w0 *= r0;
                    w1 *= r1;
                    r0 *= ea0;
                    r1 *= ea1;
                    acc0 += wf * load8(src);
                    acc1 += wf * load8(src + plane);
                    acc2 += wf * load8(src + 2 * plane);
                }
                TOT[0] = t0;
                TOT[1] = t1;
            }
            for (int k = 0; k < 2; k++) {
                ws[k] *= g[k];
                g[k] *= EC[k];
                if (step == 1) { rrow[k] *= EB[k]; lrow[k] /= EB[k]; }
                else { rrow[k] /= EB[k]; lrow[k] *= EB[k]; }
            }
        }
    }
    double tot[8];
    memcpy(tot, TOT, sizeof tot);
    float a[3][8];
    memcpy(a[0], &acc0, sizeof acc0); memcpy(a[1], &acc1, sizeof acc1); memcpy(a[2], &acc2, sizeof acc2);
    for (int ch = 0; ch < 3; ch++) {
        float *op = out + (size_t)ch * h * w + (size_t)i * w + j0;
        for (int l = 0; l < 8; l++) op[l] = (float)((double)a[ch][l] / tot[l]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* Same arithmetic in every clone (no FMA, no reassociation): results do not depend on the CPU. */
__attribute__((target_clones("avx2", "default")))
#endif
static int svblur_image(const float *poly, float *out, const float *field, int channels,
                        int h, int w, int hq, int wq, int scale, int ksize, double delta) {
    const int r = ksize / 2;
    int ac = r + (int)floor(delta + 0.5);
    if (ac > ksize - 1) ac = ksize - 1;
    const double dc = ac - r - delta;
    const size_t plane = (size_t)hq * wq;
    const size_t phase = plane * channels;
    const size_t n_lr = (size_t)h * w;
    PixelStart *ps = (PixelStart *)malloc(sizeof(PixelStart) * (size_t)w);
    size_t *row_off = (size_t *)malloc(sizeof(size_t) * 2 * (size_t)ksize);
    if (!ps || !row_off) { free(ps); free(row_off); return -1; }
    size_t *col_off = row_off + ksize;
    /* tap (a, b) of LR pixel (i, j) reads phase (a % s, b % s) at (i + a / s, j + b / s) */
    for (int k = 0; k < ksize; k++) {
        row_off[k] = (size_t)(k % scale) * scale * phase + (size_t)(k / scale) * wq;
        col_off[k] = (size_t)(k % scale) * phase + (size_t)(k / scale);
    }
    for (int i = 0; i < h; i++) {
        for (int j = 0; j < w; j++) {
            const size_t p = (size_t)i * w + j;
            pixel_start(&ps[j], field[p], field[n_lr + p], field[2 * n_lr + p], dc);
        }
        /* constant channel counts and tile widths let the compiler keep a tile in registers */
        int j0 = 0;
        if (channels == 3) {
            for (; j0 + 8 <= w; j0 += 8)
                tile8x3(poly, out, ps + j0, i, j0, h, w, wq, ksize, ac, plane, row_off, col_off);
        } else {
            for (; j0 + TILE <= w; j0 += TILE)
                tile(poly, out, ps + j0, TILE, i, j0, channels, h, w, wq, ksize, ac, plane, row_off,
                     col_off);
        }
        if (j0 < w)
            tile(poly, out, ps + j0, w - j0, i, j0, channels, h, w, wq, ksize, ac, plane, row_off,
                 col_off);
    }
    free(ps);
    free(row_off);
    return 0;
}

static PyObject *py_svblur(PyObject *self, PyObject *args) {
    unsigned long long poly, out, field;
    int channels, h, w, hq, wq, scale, ksize;
    double delta;
    if (!PyArg_ParseTuple(args, "KKKiiiiiiid", &poly, &out, &field, &channels, &h, &w, &hq, &wq,
                          &scale, &ksize, &delta))
        return NULL;
    if (channels < 1 || channels > MAXC) {
        PyErr_Format(PyExc_ValueError, "svblur supports 1 to %d channels, got %d", MAXC, channels);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
#if defined(__SSE2__)
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ: decayed weights become 0, not slow denormals */
#endif
    rc = svblur_image((const float *)(uintptr_t)poly, (float *)(uintptr_t)out,
                      (const float *)(uintptr_t)field, channels, h, w, hq, wq, scale, ksize, delta);
#if defined(__SSE2__)
    _mm_setcsr(csr);
#endif
    Py_END_ALLOW_THREADS
    if (rc != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"svblur", py_svblur, METH_VARARGS,
     "svblur(poly_ptr, out_ptr, field_ptr, C, h, w, hq, wq, scale, K, delta): one image, float32."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_svblur",
                                    "Fused CPU kernel of apply_kernel_field.", -1, methods};

PyMODINIT_FUNC PyInit__svblur(void) { return PyModule_Create(&module); }
