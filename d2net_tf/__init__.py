"""D2-Net (ICCV 2021) weakly-supervised temporal action localization, TensorFlow / Keras 3."""

__version__ = "0.1.0"
