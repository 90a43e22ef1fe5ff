"""The command lines: one module per command, all written the same way.

A command `d2net_tf/cli/<command>.py` (console script `d2net-<command>`; from a checkout
also `python -m d2net_tf.cli.<command>`, and `python -m trainers.<command>` /
`python -m export.<format>` for the training and export commands):
  - defines its own flags at module level, and the shared groups it needs by calling
    `define_*_flags()` of `data_flags`, `training_flags`, `extraction_flags` or `export_flags`;
  - marks its required flags; has a `main(argv)` wrapped in `run_cli` that calls one
    library function and prints what it did;
  - ends with `def run(): run_command(main)` (the console-script target).
A command module is imported only to run it: it defines flags on import, so two commands
cannot share one process. The logic lives in the library modules, which never import this
package.

Errors are one line: bad input (D2NetInputError, OSError) or a bad or missing flag ->
`error: <first line>` on stderr, exit status 2; FloatingPointError (training stopped by
--max_nonfinite_steps) -> exit status 1. A traceback only with --verbosity >= 1. Logs
default to warnings and errors (--verbosity=0 shows INFO).
"""

from __future__ import annotations

import functools
import sys
import traceback

from absl import app, flags, logging

from d2net_tf.errors import D2NetInputError


def _verbose() -> bool:
    f = flags.FLAGS
    return f.is_parsed() and f["verbosity"].present and f.verbosity >= 1


def run_cli(main):
    """Wraps a command's main(argv): the error handling above."""

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


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with a bad, unknown or missing required flag as one line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {str(e).splitlines()[0]} (--helpshort lists the flags)", file=sys.stderr)
        sys.exit(2)


def run_command(main) -> None:
    """Runs `main` (a command's run_cli-wrapped main) under absl.

    absl's --help/--helpshort list the flags of the `__main__` module and print its
    docstring; a console script's `__main__` is a generated stub and `python -m
    trainers.fit` runs a three-line wrapper, so both are pointed at the command module:
    its docstring and every flag defined by this package's modules (the command's own
    and its shared groups; only one command is imported per process).
    """
    command = sys.modules[main.__module__]
    sys.modules["__main__"].__doc__ = command.__doc__
    program = sys.argv[0]
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if module.startswith("d2net_tf.") or module == program:
            for flag in module_flags:
                flags.FLAGS.register_key_flag_for_module(program, flag)
    app.run(main, flags_parser=_parse_flags)
