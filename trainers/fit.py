"""`python -m trainers.fit --flagfile=...` from a checkout: the d2net-fit command."""

from d2net_tf.cli.fit import run

if __name__ == "__main__":
    run()
