"""`python -m trainers.evaluate` from a checkout: the d2net-evaluate command."""

from d2net_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
