"""`python -m export.tflite` from a checkout: the d2net-export-tflite command."""

from d2net_tf.cli.export_tflite import run

if __name__ == "__main__":
    run()
