"""The D2-Net network: temporal conv layers, the two streams and the two-stream model."""

from d2net_tf.modeling.d2net import D2Net, build_network
from d2net_tf.modeling.layers import Dropout16, TemporalConv, TemporalConvStream

__all__ = ["D2Net", "Dropout16", "TemporalConv", "TemporalConvStream", "build_network"]
