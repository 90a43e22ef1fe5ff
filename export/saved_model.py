"""`python -m export.saved_model` from a checkout: the d2net-export-saved-model command."""

from d2net_tf.cli.export_saved_model import run

if __name__ == "__main__":
    run()
