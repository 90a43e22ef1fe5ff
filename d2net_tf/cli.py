"""Error handling shared by every command line: bad input -> one line on stderr, exit status 2."""

from __future__ import annotations

import functools
import sys
import traceback

from absl import flags, logging

from d2net_tf.errors import D2NetInputError


def _verbose() -> bool:
    f = flags.FLAGS
    return f.is_parsed() and f["verbosity"].present and f.verbosity >= 1


def run_cli(main):
    """Wraps a command's main(argv).

    D2NetInputError / OSError (missing, unreadable, malformed input; refused outputs) ->
    `error: <first line>` on stderr and exit status 2; FloatingPointError (training stopped
    by --max_nonfinite_steps) -> exit status 1. A traceback only with --verbosity >= 1.
    Under absl, logs default to warnings and errors (--verbosity=0 shows INFO).
    """

    @functools.wraps(main)
    def wrapped(argv=None):
        if flags.FLAGS.is_parsed() and not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        try:
            return main(argv)
        except (D2NetInputError, OSError, FloatingPointError) as e:
            if _verbose():
                traceback.print_exc()
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(1 if isinstance(e, FloatingPointError) else 2)

    return wrapped
