"""`python -m trainers.localize` from a checkout: the d2net-localize command."""

from d2net_tf.cli.localize import run

if __name__ == "__main__":
    run()
