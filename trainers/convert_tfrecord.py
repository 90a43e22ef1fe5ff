"""`python -m trainers.convert_tfrecord` from a checkout: dataset -> indexed TFRecord shards."""

from d2net_tf.cli.convert_tfrecord import run

if __name__ == "__main__":
    run()
