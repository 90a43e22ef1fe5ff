"""`python -m trainers.extract_features` from a checkout: the d2net-extract-features command."""

from d2net_tf.cli.extract_features import run

if __name__ == "__main__":
    run()
