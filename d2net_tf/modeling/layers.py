"""TemporalConv, Dropout16 and TemporalConvStream: D2-Net's temporal conv layers, its dropout and
one of its two identical parallel streams (paper Sec. 3, Fig. 2)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from d2net_tf.modeling.winograd import uses_winograd, winograd_forward, winograd_gradients, winograd_valid_conv


# The name scope of the hand-written gradients below (a custom gradient's ops are otherwise unscoped);
# benchmarks/profile_step.py files their ops under the streams' backward pass by it.
GRADIENT_SCOPE = "valid_conv_gradient"


def _tap_windows(rows, kernel_size: int, dilation: int, size):
    """The row window [j * dilation, j * dilation + size) of every tap j: views of `rows`."""
    return [rows[j * dilation : j * dilation + size] for j in range(kernel_size)]


def _tap_sum(windows, taps, bias):
    """sum_j windows[j] @ taps[j] + bias: a 'valid' convolution's output from its tap windows."""
    return tf.add_n([tf.matmul(win, tap) for win, tap in zip(windows, taps)]) + bias


def _tap_sum_gradients(rows, windows, taps, dilation: int, upstream, extra=()):
    """Gradients of y = sum_j windows[j] @ taps[j] + bias from upstream [n, out]: (rows,
    kernel [k, in, out], bias). The rows' gradient is the sum of the taps' windows of ONE padded
    copy of `upstream` (times the tap's transpose), plus `extra` tensors shaped like `rows`."""
    span = (len(taps) - 1) * dilation
    d_kernel = tf.stack([tf.matmul(win, upstream, transpose_a=True) for win in windows])
    padded = tf.pad(upstream, [[span, span], [0, 0]]) if span else upstream
    time = tf.shape(rows)[0]
    d_rows = tf.add_n([tf.matmul(padded[span - j * dilation : span - j * dilation + time], tap, transpose_b=True)
                       for j, tap in enumerate(taps)] + list(extra))
    return d_rows, d_kernel, tf.reduce_sum(upstream, axis=0)


def valid_temporal_conv(rows, kernel, bias, dilation: int = 1, conv_algorithm: str = "direct"):
    """'valid' temporal convolution of one sequence: rows [time, in], kernel [k, in, out] and
    bias [out] -> [time - (k - 1) * dilation, out], with
    y[t] = bias + sum_j rows[t + j * dilation] @ kernel[j] (`keras.layers.Conv1D(padding="valid")`).

    Every tap reads a window of rows, and a leading-dimension slice of a 2-D tensor is a view in
    TensorFlow's CPU kernels (no copy when a row is a multiple of 64 bytes): the forward pass
    copies nothing but the tap sum. The gradient is written out, because autodiff would pad each
    window's gradient back to `time` rows: one padded copy of the upstream gradient, whose
    windows give the input gradient, while the kernel gradient reads the forward windows.

    `conv_algorithm="winograd"` (3 to 5 taps): `winograd.winograd_valid_conv`, the same
    convolution and its gradient with half the multiplications (F(4, 3)).
    """
    k = int(kernel.shape[0])
    if uses_winograd(conv_algorithm, k):
        return winograd_valid_conv(rows, kernel, bias, dilation)

    @tf.custom_gradient
    def conv(x, w, b):
        taps = tf.unstack(w, axis=0)
        windows = _tap_windows(x, k, dilation, tf.shape(x)[0] - (k - 1) * dilation)

        def grad(upstream):
            with tf.name_scope(GRADIENT_SCOPE):
                return _tap_sum_gradients(x, windows, taps, dilation, upstream)

        return _tap_sum(windows, taps, b), grad

    return conv(rows, kernel, bias)


def valid_embedding_layer(rows, kernel, bias, keep, dilation: int = 1, residual: bool = True,
                          negative_slope: float = 0.2, conv_algorithm: str = "direct"):
    """One embedding layer of a stream on one sequence, 'valid' (see `valid_temporal_conv`):
    y = where(keep, leaky_relu(conv(rows)) + rows[centre], 0), `keep` [n, 1] bool, n = time - (k - 1) * dilation,
    rows[centre] = rows[reach : reach + n] (the residual, official h = lrelu(conv(h)) + h; none
    if not `residual`).

    One custom gradient for the whole layer: the residual's gradient is a padded copy of the
    upstream gradient in the rows' sum, where autodiff of the centre window's slice writes it
    with a StridedSliceGrad (about 3x the time of a pad).

    `conv_algorithm="winograd"` (3 to 5 taps): the convolution and its gradient by
    `winograd.winograd_forward` / `winograd_gradients`.
    """
    k = int(kernel.shape[0])
    reach = (k - 1) // 2 * dilation
    winograd = uses_winograd(conv_algorithm, k)

    @tf.custom_gradient
    def layer(x, w, b):
        n = tf.shape(x)[0] - (k - 1) * dilation
        if winograd:
            pre, saved = winograd_forward(x, w, b, dilation)
        else:
            taps = tf.unstack(w, axis=0)
            windows = _tap_windows(x, k, dilation, n)
            pre = _tap_sum(windows, taps, b)
        out = tf.nn.leaky_relu(pre, alpha=negative_slope)
        if residual:
            out = out + x[reach : reach + n]
        out = tf.where(keep, out, tf.zeros((), out.dtype))

        def grad(upstream):
            with tf.name_scope(GRADIENT_SCOPE):
                kept = tf.where(keep, upstream, tf.zeros((), upstream.dtype))
                d_pre = tf.raw_ops.LeakyReluGrad(gradients=kept, features=pre, alpha=negative_slope)
                extra = [tf.pad(kept, [[reach, reach], [0, 0]])] if residual else []
                if winograd:
                    return winograd_gradients(saved, d_pre, extra)
                return _tap_sum_gradients(x, windows, taps, dilation, d_pre, extra)

        return out, grad

    return layer(rows, kernel, bias)


def conv_initializers(init: str):
    """Kernel and bias initializers: official N(0, 0.01) and zero bias, or Keras defaults."""
    if init == "official":
        return keras.initializers.RandomNormal(stddev=0.01), keras.initializers.Zeros()
    if init == "glorot":
        return keras.initializers.GlorotUniform(), keras.initializers.Zeros()
    raise ValueError(f"init must be 'official' or 'glorot', got {init!r}")


@keras.saving.register_keras_serializable(package="d2net_tf")
class TemporalConv(keras.layers.Layer):
    """1-D convolution over time with 'same' zero padding, computed as one matmul per tap.

    y[t] = b + sum_j x[t + (j - (k - 1) / 2) * dilation] @ W[j], i.e. exactly
    `keras.layers.Conv1D(padding="same")` for odd k (same kernel layout [k, in, out]).
    Each tap is a [batch * time, in] x [in, out] matmul whose output is shifted in time:
    on CPU this runs at matmul speed (2.5x the float32 throughput of oneDNN's conv1d
    forward + backward at D2-Net's layer size, see benchmarks/RESULTS.md).

    Input [batch, time, in]; output [batch, time, filters]. `call(rows, padding="valid")`
    convolves one sequence of rows [time, in] without padding instead (`valid_temporal_conv`):
    [time - (k - 1) * dilation, filters], row t centred on input row t + `reach`.

    Args:
      filters: int, output channels.
      kernel_size: int (odd), taps.
      dilation_rate: int, spacing of the taps in snippets.
      kernel_initializer, bias_initializer: Keras initializers.
    """

    def __init__(self, filters: int, kernel_size: int, dilation_rate: int = 1,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding is symmetric), got {kernel_size}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        # autocast=False: the kernel is read in its own dtype (float32) and cast where it is used
        # (`compute_weights`), so that Winograd can transform the float32 kernel itself.
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, input_shape[-1], self.filters),
                                      initializer=self.kernel_initializer, autocast=False)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
        self.built = True

    @property
    def reach(self) -> int:
        """Input snippets on each side of an output snippet: the 'same' padding."""
        return (self.kernel_size - 1) // 2 * self.dilation_rate

    def compute_weights(self, conv_algorithm: str = "direct"):
        """(kernel, bias) as a convolution by `conv_algorithm` takes them (their gradients reach the
        variables): the bias in the compute dtype; the kernel in the compute dtype for the direct tap
        sum, and as the float32 variable for Winograd, whose kernel transform runs in float32 and casts
        once (under mixed_bfloat16: no bfloat16 rounding before the transform, and no kernel-sized
        casts to bfloat16 and back in the forward and in the gradient)."""
        winograd = uses_winograd(conv_algorithm, self.kernel_size)
        kernel = tf.convert_to_tensor(self.kernel) if winograd else ops.cast(self.kernel, self.compute_dtype)
        return kernel, ops.cast(self.bias, self.compute_dtype)

    def call(self, inputs, padding="same", conv_algorithm="direct"):
        if padding == "valid":
            return valid_temporal_conv(inputs, *self.compute_weights(conv_algorithm), self.dilation_rate,
                                       conv_algorithm)
        if conv_algorithm != "direct":
            raise ValueError(f"conv_algorithm={conv_algorithm!r} runs 'valid' convolutions (packed rows) only")
        if padding != "same":
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        half, reach = (self.kernel_size - 1) // 2, self.reach
        time = ops.shape(inputs)[1]
        # One read (and, under mixed precision, one cast) of the kernel, split by unstack: its
        # gradient is one stack, where kernel[j] costs a kernel-sized scatter per tap.
        kernel, bias = self.compute_weights()
        taps = ops.unstack(kernel, axis=0)
        out = None
        for j in range(self.kernel_size):
            z = ops.matmul(inputs, taps[j])  # [batch, time, filters]
            offset = (j - half) * self.dilation_rate
            if offset:  # y[t] += z[t + offset], zero outside the sequence
                z = ops.pad(z, [[0, 0], [reach, reach], [0, 0]])
                z = ops.slice(z, [0, reach + offset, 0], [ops.shape(z)[0], time, self.filters])
            out = z if out is None else out + z
        return out + bias

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            dilation_rate=self.dilation_rate,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="d2net_tf")
class Dropout16(keras.layers.Layer):
    """Inverted dropout drawing one 16-bit random number per element (two per Philox uint32).

    Keeps an element iff its 16-bit draw r >= round(rate * 2^16), so the keep probability is
    q = 1 - round(rate * 2^16) / 2^16 (0.7 -> 0.3000031) and kept values are scaled by 1 / q
    (E[output] = input exactly). Half the random numbers of `keras.layers.Dropout`, and unbiased
    in bfloat16: Keras draws the uniform in the input's dtype, and a bfloat16 uniform keeps
    0.2965 instead of 0.3 at rate 0.7 (measured). The RNG state is a `keras.random.SeedGenerator`
    (checkpointed with the model, see `model_dir.seed_generator_states`).

    Input any shape; output the same shape and dtype. Identity outside training.
    `multiplier` (same shape as the input) replaces the random draw: output = input x multiplier
    (0 or 1 / keep), for a comparison that feeds two implementations the same masks.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.threshold = int(round(float(rate) * 65536))
        if not (0.0 <= rate < 1.0 and self.threshold < 65536):
            raise ValueError(f"dropout rate must be in [0, 1 - 2^-17), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        if self.threshold:  # like keras.layers.Dropout: no RNG state (no global draw) at rate 0
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=False, multiplier=None):
        if not training:
            return inputs
        if multiplier is not None:
            return inputs * ops.cast(multiplier, inputs.dtype)
        if self.threshold == 0:
            return inputs
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        n = tf.size(inputs)
        bits = tf.random.stateless_uniform([(n + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
        r = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:n]
        keep = tf.reshape(r >= tf.constant(self.threshold, tf.uint16), tf.shape(inputs))
        scale = ops.cast(65536.0 / (65536 - self.threshold), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros((), inputs.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="d2net_tf")
class TemporalConvStream(keras.layers.Layer):
    """Three temporal conv (TC) layers: two embedding layers, then a sigmoid classifier.

    Input  [batch, time, channels] features of one modality (RGB or flow) and a
    validity mask [batch, time] (1 = real snippet). Output: (embedding
    [batch, time, channels], class activations [batch, time, num_classes] in (0, 1)).
    Every layer's output is re-zeroed on invalid snippets, so a video in a padded or
    packed batch sees exactly the zero padding it would see alone.

    Args:
      channels: int, width of the embedding layers (D/2).
      num_classes: int, C.
      kernel_size, dilation: ints, first two TC layers ((3, 1) THUMOS14, (5, 2) ActivityNet1.2).
      classifier_kernel_size, classifier_dilation: ints, third TC layer.
      residual: bool, official h = lrelu(conv(h)) + h around the first two layers.
      dropout: float, dropout rate before the classifier in training (official 0.7; `Dropout16`).
      init: "official" (N(0, 0.01) weights, zero bias) or "glorot".
      embeddings_after_dropout: bool, in training return the embedding after dropout (official:
        the same mask that feeds the classifier).
      rezero_padding: bool, re-zero invalid snippets after every layer in training (False,
        official: padding leaks into a video's last snippets through the second and third
        layers of a padded training batch). Outside training padding is always re-zeroed, so a
        video's outputs equal those of the video alone (the official code tests one at a time).
      seed: int or None, None. Seed of the dropout masks (None: drawn from Keras' global seeding,
        `keras.utils.set_random_seed`).
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        kernel_size: int = 3,
        dilation: int = 1,
        classifier_kernel_size: int = 1,
        classifier_dilation: int = 1,
        residual: bool = True,
        dropout: float = 0.7,
        init: str = "official",
        embeddings_after_dropout: bool = True,
        rezero_padding: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = channels
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.classifier_kernel_size = classifier_kernel_size
        self.classifier_dilation = classifier_dilation
        self.residual = residual
        self.dropout = dropout
        self.init = init
        self.embeddings_after_dropout = embeddings_after_dropout
        self.rezero_padding = rezero_padding
        self.seed = seed
        k_init, b_init = conv_initializers(init)

        def conv(filters, k, d, name):
            return TemporalConv(filters, k, dilation_rate=d, kernel_initializer=k_init,
                                bias_initializer=b_init, name=name)

        self.conv1 = conv(channels, kernel_size, dilation, "tc1")
        self.conv2 = conv(channels, kernel_size, dilation, "tc2")
        self.classifier = conv(num_classes, classifier_kernel_size, classifier_dilation, "tc3")
        self.drop = Dropout16(dropout, seed=seed, name="dropout")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(tuple(input_shape[:-1]) + (self.channels,))
        self.classifier.build(tuple(input_shape[:-1]) + (self.channels,))
        self.built = True

    def _embed(self, conv, h, mask, training):
        out = ops.leaky_relu(conv(h), negative_slope=0.2)
        if self.residual:
            out = out + h
        if training and not self.rezero_padding:
            return out
        return ops.where(mask > 0, out, ops.zeros((), out.dtype))

    def call(self, inputs, snippet_mask=None, training=False, dropout_multiplier=None, packed=False,
             conv_algorithm="direct"):
        """`packed=True`: `inputs` [1, L, channels] is one packed sequence (`data.pipeline.pack_videos`,
        videos apart by at least `reach` zero snippets) with its `snippet_mask` [1, L]; see
        `_call_packed`. `conv_algorithm="winograd"`: the TC layers by `winograd.winograd_valid_conv`
        (packed sequences only; training too)."""
        if conv_algorithm != "direct" and not packed:
            raise ValueError(f"conv_algorithm={conv_algorithm!r} runs on packed sequences only (packed=False)")
        if packed:
            return self._call_packed(inputs, snippet_mask, training, dropout_multiplier, conv_algorithm)
        if snippet_mask is None:
            snippet_mask = ops.ones(ops.shape(inputs)[:2], dtype=inputs.dtype)
        m = ops.cast(snippet_mask, inputs.dtype)[..., None]
        # `where`, not a product: NaN/inf in padded positions must not leak (NaN * 0 = NaN).
        # A scalar zero (broadcast), not zeros_like: no zero tensor written (here and below).
        h = ops.where(m > 0, inputs, ops.zeros((), inputs.dtype))
        h = self._embed(self.conv1, h, m, training)
        embedding = self._embed(self.conv2, h, m, training)
        dropped = self.drop(embedding, training=training, multiplier=dropout_multiplier)
        logits = self.classifier(dropped)
        if self.embeddings_after_dropout:
            embedding = dropped
        # Padding re-zeroed in the activations (they are masked out of every loss).
        activations = ops.where(m > 0, ops.sigmoid(ops.cast(logits, "float32")), 0.0)
        return embedding, activations

    @property
    def reach(self) -> int:
        """The widest 'same' padding of the three TC layers: the zero snippets a packed sequence
        needs between videos (`D2Net.packing_gap`)."""
        return max(conv.reach for conv in (self.conv1, self.conv2, self.classifier))

    def _call_packed(self, inputs, snippet_mask, training, dropout_multiplier, conv_algorithm="direct"):
        """`call` on one packed sequence, computed on its rows [L, channels].

        Each TC layer convolves 'valid' (`valid_temporal_conv`: its taps read row windows, which
        are views, where 'same' padding shifts a copy of every tap's output), so it loses its
        reach at both ends. The rows are zero-padded by the summed reach of the three layers
        first: the classifier's rows are the input's rows again, and the embedding's a view of
        its rows. Every layer re-zeroes the gaps, so each video sees the zeros it would see alone
        and the outputs equal `call`'s up to the order of the tap sums."""
        if training and not self.rezero_padding:
            raise ValueError("packed sequences need rezero_padding=True: without it a video's padding leaks "
                             "into its neighbours")
        if snippet_mask is None:
            raise ValueError("packed sequences need their snippet_mask [1, L]")
        dtype = inputs.dtype
        length = ops.shape(inputs)[1]
        convs = (self.conv1, self.conv2, self.classifier)
        margin = sum(conv.reach for conv in convs)
        # Row i of a layer's output is row i + offset of the padded rows, row i + offset - margin of
        # the sequence (offset: the reach lost at each end so far).
        valid = tf.pad(tf.reshape(ops.cast(snippet_mask, "float32"), [-1]), [[margin, margin]]) > 0
        total = length + 2 * margin
        rows = tf.pad(tf.reshape(inputs, [length, -1]), [[margin, margin], [0, 0]])
        h, offset = ops.where(valid[:, None], rows, ops.zeros((), dtype)), 0
        for conv in convs[:2]:
            offset += conv.reach
            h = valid_embedding_layer(h, *conv.compute_weights(conv_algorithm),
                                      valid[offset : total - offset, None], conv.dilation_rate, self.residual,
                                      conv_algorithm=conv_algorithm)
        multiplier = None
        if dropout_multiplier is not None and training:
            multiplier = tf.pad(tf.reshape(dropout_multiplier, [length, -1]), [[margin, margin], [0, 0]])
            multiplier = multiplier[offset : total - offset]
        dropped = self.drop(h, training=training, multiplier=multiplier)
        # [L, num_classes]: the sequence's rows
        logits = self.classifier(dropped, padding="valid", conv_algorithm=conv_algorithm)
        activations = ops.where(valid[margin : margin + length, None], ops.sigmoid(ops.cast(logits, "float32")), 0.0)
        embedding = dropped if self.embeddings_after_dropout else h
        cut = margin - offset  # the classifier's reach
        if cut:  # (a slice's gradient is a copy: none when the rows are already the sequence's)
            embedding = embedding[cut : cut + length]
        # expand_dims, not [None]: the gradient of [None] is a StridedSliceGrad copy.
        return tf.expand_dims(embedding, 0), tf.expand_dims(activations, 0)

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            num_classes=self.num_classes,
            kernel_size=self.kernel_size,
            dilation=self.dilation,
            classifier_kernel_size=self.classifier_kernel_size,
            classifier_dilation=self.classifier_dilation,
            residual=self.residual,
            dropout=self.dropout,
            init=self.init,
            embeddings_after_dropout=self.embeddings_after_dropout,
            rezero_padding=self.rezero_padding,
            seed=self.seed,
        )
        return config
