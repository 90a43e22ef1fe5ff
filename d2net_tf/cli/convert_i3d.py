"""Converts a public kinetics-i3d checkpoint (one stream) to Keras weights for the feature extractor.

    d2net-convert-i3d --checkpoint kinetics-i3d/data/checkpoints/rgb_imagenet --out i3d_rgb.weights.h5
    (from a checkout: python -m d2net_tf.cli.convert_i3d ...)

--checkpoint is the checkpoint folder (one `*.index` in it) or the prefix (`.../model.ckpt`);
the stream (RGB or flow) is read from its first convolution. Nothing is downloaded: the
checkpoints come from the kinetics-i3d repository (BUILD.md, "Video features"). The mapping
rules are in d2net_tf.features.convert_i3d.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command

flags.DEFINE_string("checkpoint", None, "kinetics-i3d checkpoint folder (e.g. data/checkpoints/rgb_imagenet) or prefix.")
flags.DEFINE_string("out", None, "Output Keras weights file (…weights.h5).")
flags.DEFINE_enum("stream", None, ["rgb", "flow"], "Expected stream (default: read from the checkpoint).")
flags.mark_flags_as_required(["checkpoint", "out"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.features.convert_i3d import convert_checkpoint

    s = convert_checkpoint(FLAGS.checkpoint, FLAGS.out, FLAGS.stream)
    print(f"{s['stream']} I3D: {s['variables']} variables ({s['parameters'] / 1e6:.2f} M parameters, "
          f"{s['num_classes']} classes; {len(s['ignored'])} optimizer-state variables ignored) from {s['prefix']} "
          f"-> {FLAGS.out}")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()
