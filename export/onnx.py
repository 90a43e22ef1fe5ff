"""`python -m export.onnx` from a checkout: the d2net-export-onnx command."""

from d2net_tf.cli.export_onnx import run

if __name__ == "__main__":
    run()
