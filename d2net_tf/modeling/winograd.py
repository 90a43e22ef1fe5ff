"""Winograd (Toom-Cook) temporal convolution: the TC layers' 'valid' convolution of one sequence,
and its gradient, with fewer multiplications.

A 'valid' k-tap convolution y[t] = sum_j x[t + j d] W[j] costs k matmuls of [n, in] x [in, out]
when computed directly (`layers.valid_temporal_conv`). Winograd's minimal filtering algorithm
F(m, k) computes m consecutive outputs from a tile of a = m + k - 1 inputs with a matmuls of
[n / m, in] x [in, out] instead of m * k (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016):

    Y = A^T [ (G W) (.) (B^T X) ]       X: a input rows, Y: m output rows,

where (.) is a matmul per tile row. Here a = 6 always, with the interpolation points 0, +-1, 1/2,
-2 and infinity: F(4, 3) for the 3-tap layers of THUMOS14 (2x fewer multiplications than direct),
F(2, 5) for the 5-tap layers of ActivityNet1.2 (1.67x fewer). With dilation d every tile reads
rows d apart, so a tile covers m * d consecutive outputs in d interleaved phases. The gradient runs
the same transforms backwards (`winograd_gradients`), so training saves as much as inference.

A^T and B^T are exact in binary (multiples of 1/8); G (reciprocals of point products such as
1/0.9375) is rounded once, to float32. The transforms add and subtract values larger than the
outputs, so the results carry more round-off than the direct sum: float32 about 2x (RMS), bfloat16
about 1.5x (benchmarks/RESULTS.md). That is why it is an option (`conv_algorithm="winograd"`:
`d2net-fit`, `d2net-evaluate`, `d2net-localize`), never the default: the default computes the
official code's direct sum.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from d2net_tf.config import CONV_ALGORITHMS
from d2net_tf.errors import D2NetInputError

TILE = 6  # inputs per tile, a = m + k - 1
# The finite interpolation points (and infinity). 1/2 and -2 instead of the usual +-2: 12% less
# bfloat16 round-off at D2-Net's layer size (RMS relative error 5.7e-3 against 6.5e-3; direct 3.7e-3),
# 16% less in float32 (Barabasz et al., "Error analysis and improving the accuracy of Winograd
# convolution for deep neural networks", 2020, on the choice of points).
POINTS = (0.0, 1.0, -1.0, 0.5, -2.0)


def supports(kernel_size: int) -> bool:
    """Whether a `kernel_size`-tap layer has a Winograd form here (3 <= k <= 5; k = 1 is one
    matmul already)."""
    return 3 <= kernel_size <= TILE - 1


@functools.lru_cache(maxsize=None)
def toom_cook_matrices(kernel_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T [m, a], G [a, k], B^T [a, a]) of F(m, k), m = a - k + 1, in float64.

    Row i < 5 of G and B^T belongs to point p_i: G[i] = (1, p_i, p_i^2, ...) / prod_{q != p_i} (p_i - q)
    and B^T[i] holds the coefficients of prod_{q != p_i} (x - q); A^T[j, i] = p_i^j. The last row
    (the point at infinity) takes W's last tap (G) and the leading coefficients (B^T, A^T).
    """
    if not supports(kernel_size):
        raise ValueError(f"Winograd F(m, k) is defined here for 3 <= k <= {TILE - 1} taps, got {kernel_size}")
    k, a = kernel_size, TILE
    m = a - k + 1
    pts = np.array(POINTS)
    full = np.poly1d(pts, r=True).coeffs[::-1]  # prod_q (x - q), ascending powers
    at, g, bt = np.zeros((m, a)), np.zeros((a, k)), np.zeros((a, a))
    for i, p in enumerate(pts):
        others = pts[pts != p]
        g[i] = p ** np.arange(k) / np.prod(p - others)
        bt[i, : len(others) + 1] = np.poly1d(others, r=True).coeffs[::-1]
        at[:, i] = p ** np.arange(m)
    g[-1, -1] = 1.0
    bt[-1] = full[:a]
    at[-1, -1] = 1.0
    return at, g, bt


def winograd_forward(rows, kernel, bias, dilation: int = 1):
    """`layers.valid_temporal_conv(rows, kernel, bias, dilation)` by F(m, k): rows [time, in],
    kernel [k, in, out] (any float dtype: float32 saves a rounding and two casts under mixed
    precision, `TemporalConv.compute_weights`), bias [out] in the rows' dtype ->
    (y [time - (k - 1) * dilation, out] in the rows' dtype, `saved`: what `winograd_gradients` needs).

    The tiles of every output block (m * dilation rows) are gathered as [a, blocks * dilation, in]
    (a copy of a / m times the rows, one gather), transformed by B^T as one matmul, multiplied by the a
    transformed kernel taps G W as one batched matmul, and transformed back by A^T. The kernel
    transform runs in float32 and is cast to the compute dtype once.
    """
    k = int(kernel.shape[0])
    at, g, bt = toom_cook_matrices(k)
    m, a = at.shape
    dtype = rows.dtype
    channels, filters = int(kernel.shape[1]), int(kernel.shape[2])
    time = tf.shape(rows)[0]
    n = time - (k - 1) * dilation
    block = m * dilation
    blocks = (n + block - 1) // block
    # Block b's outputs are rows [b * block, (b + 1) * block); input i of the tile of its phase s is
    # row b * block + s + i * dilation. One gather writes the tiles [a, blocks * dilation, in]; rows
    # past the end (for the last block's outputs beyond n, cut below) read the last row instead; the
    # transforms cancel them from the kept outputs up to round-off.
    starts = tf.reshape(tf.range(blocks)[:, None] * block + tf.range(dilation)[None, :], [-1])
    index = tf.minimum(starts[None, :] + dilation * tf.range(a)[:, None], time - 1)
    tiles = tf.gather(rows, index)
    u = tf.reshape(tf.matmul(tf.constant(bt, dtype), tf.reshape(tiles, [a, -1])), [a, -1, channels])
    w = tf.cast(tf.tensordot(tf.constant(g, tf.float32), tf.cast(kernel, tf.float32), 1), dtype)  # [a, in, out]
    products = tf.matmul(u, w)  # [a, blocks * dilation, out]
    y = tf.matmul(tf.constant(at, dtype), tf.reshape(products, [a, -1]))  # [m, blocks * dilation * out]
    y = tf.transpose(tf.reshape(y, [m, blocks, dilation, filters]), [1, 0, 2, 3])
    saved = {"u": u, "w": w, "time": time, "n": n, "blocks": blocks, "dilation": dilation, "kernel_size": k,
             "kernel_dtype": kernel.dtype}
    return tf.reshape(y, [-1, filters])[:n] + bias, saved


def winograd_gradients(saved, upstream, extra=()):
    """Gradients (rows, kernel, bias) of `winograd_forward`'s convolution from upstream [n, out],
    run through the same transforms backwards (Lavin & Gray Sec. 4.3): dP = A dY per tile,
    dU = dP (G W)^T and d(G W) = U^T dP as batched matmuls of the forward's size, d kernel = G^T d(G W)
    (float32, returned in the forward kernel's dtype), d tiles = B dU, and the tiles' overlap-add back
    onto the rows, plus the `extra` tensors shaped like the rows.

    Three batched matmuls of [a, blocks * dilation, .] in all: half the multiplications of the
    direct convolution's forward and backward (`layers._tap_sum_gradients`) for F(4, 3). The
    forward's reads past the last row (its gather clamps them) are outputs' inputs that were cut, so
    their gradient is dropped: this is the gradient of the convolution itself.
    """
    u, w, dilation, blocks = saved["u"], saved["w"], saved["dilation"], saved["blocks"]
    at, g, bt = toom_cook_matrices(saved["kernel_size"])
    m, a = at.shape
    dtype = upstream.dtype
    channels, filters = int(w.shape[1]), int(w.shape[2])
    block = m * dilation
    # dY in the tile layout [m, blocks * dilation * out]: the forward's output reshape backwards,
    # zero for the cut outputs past n.
    dy = tf.pad(upstream, [[0, blocks * block - saved["n"]], [0, 0]])
    dy = tf.transpose(tf.reshape(dy, [blocks, m, dilation, filters]), [1, 0, 2, 3])
    d_products = tf.reshape(tf.matmul(tf.constant(at.T, dtype), tf.reshape(dy, [m, -1])), [a, -1, filters])
    d_u = tf.matmul(d_products, w, transpose_b=True)  # [a, blocks * dilation, in]
    d_w = tf.matmul(u, d_products, transpose_a=True)  # [a, in, out]
    d_kernel = tf.tensordot(tf.constant(g.T, tf.float32), tf.cast(d_w, tf.float32), 1)
    d_kernel = tf.cast(d_kernel, saved["kernel_dtype"])
    d_tiles = tf.reshape(tf.matmul(tf.constant(bt.T, dtype), tf.reshape(d_u, [a, -1])),
                         [a, blocks, dilation, channels])
    # Tile input i of block b, phase s is row (b + i // m) * block + (i % m) * dilation + s: the
    # inputs of group q = i // m are rows of block b + q (F(4, 3): 4 of its own, 2 of the next block's).
    groups = []
    for q in range(0, a, m):
        part = tf.transpose(d_tiles[q : q + m], [1, 0, 2, 3])  # [blocks, <= m, dilation, in]
        part = tf.pad(part, [[q // m, (a - 1) // m - q // m], [0, m - min(m, a - q)], [0, 0], [0, 0]])
        groups.append(tf.reshape(part, [-1, channels]))
    d_rows = tf.add_n(groups)[: saved["time"]]
    if extra:
        d_rows = tf.add_n([d_rows, *extra])
    return d_rows, d_kernel, tf.reduce_sum(upstream, axis=0)


def winograd_valid_conv(rows, kernel, bias, dilation: int = 1):
    """`winograd_forward`'s output, differentiable by `winograd_gradients`."""

    @tf.custom_gradient
    def conv(x, w, b):
        y, saved = winograd_forward(x, w, b, dilation)
        return y, lambda upstream: winograd_gradients(saved, upstream)

    return conv(rows, kernel, bias)


def uses_winograd(conv_algorithm: str, kernel_size: int) -> bool:
    """Whether a `kernel_size`-tap 'valid' convolution runs by Winograd: `conv_algorithm` is
    "winograd" and the layer is not a 1-tap one (one matmul either way). ValueError for an unknown
    algorithm or a layer Winograd cannot run (`supports`)."""
    check_conv_algorithm(conv_algorithm)
    if conv_algorithm == "direct" or kernel_size == 1:
        return False
    if not supports(kernel_size):
        raise ValueError(f"conv_algorithm='winograd' needs 3 to 5 taps (or 1), got a {kernel_size}-tap layer")
    return True


def check_conv_algorithm(conv_algorithm: str) -> None:
    """D2NetInputError (a ValueError) naming the field unless `conv_algorithm` is one of CONV_ALGORITHMS."""
    if conv_algorithm not in CONV_ALGORITHMS:
        raise D2NetInputError(f"conv_algorithm must be one of {CONV_ALGORITHMS}, got {conv_algorithm!r}")


def multiplications_per_output(kernel_size: int) -> float:
    """Matmul rows per output row of F(m, k): a / m (direct: k)."""
    return TILE / (TILE - kernel_size + 1)


def matmul_taps(conv_algorithm: str, kernel_size: int) -> float:
    """Matmul rows per output row of a `kernel_size`-tap layer convolved by `conv_algorithm`: k
    direct (and for 1-tap layers), `multiplications_per_output(k)` by Winograd. The `kernel`
    argument of the benchmarks' FLOP counts for the matmuls an algorithm runs."""
    return multiplications_per_output(kernel_size) if uses_winograd(conv_algorithm, kernel_size) else kernel_size
