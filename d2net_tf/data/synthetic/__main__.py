"""python -m d2net_tf.data.synthetic: see d2net_tf.data.synthetic.generator."""

import sys

from absl import app

from d2net_tf.data.synthetic.generator import _define_flags, main

_define_flags()
app.run(lambda argv: sys.exit(main(argv)))
