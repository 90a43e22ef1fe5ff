"""Evaluates temporal action detections against ground truth (mAP at tIoU thresholds).

    python -m trainers.evaluate --ground_truth GT.json --predictions PRED.json \
        --tiou_thresholds 0.1,0.2,0.3,0.4,0.5,0.6,0.7 [--subset test] [--protocol anet] \
        [--remove_ambiguous auto|true|false] [--output out.json]

    python -m trainers.evaluate --model_dir DIR --flagfile=configs/thumos14.flags [--data_dir ...]

`--ground_truth` is an ActivityNet-style JSON or a W-TALC annotation folder. With
`--model_dir` the trained model (its selected checkpoint) runs over the evaluation split
of the dataset named by the (training) flags, then the detections are evaluated.
Prints a table (with the protocol) and writes the result JSON. Bad input: one line
on stderr and exit status 2 (a traceback with --verbosity >= 1).
"""

from __future__ import annotations

from absl import app, flags

from d2net_tf.errors import D2NetInputError
from d2net_tf.jsonio import write_json_atomic
from d2net_tf.evaluation import evaluate_predictions_file, format_results_table

from d2net_tf.cli import run_cli
from d2net_tf.cli import training_flags
from d2net_tf.cli.data_flags import dataset_from_flags
from d2net_tf.data.loading import split_train_test

training_flags.define_training_flags()  # a model's training flagfile is accepted as is

FLAGS = flags.FLAGS
flags.DEFINE_string("ground_truth", None, "ActivityNet-style ground-truth JSON or a W-TALC annotation folder (then pass --subset, e.g. test).")
flags.DEFINE_string("predictions", None, "ActivityNet-format results JSON.")
flags.DEFINE_list("tiou_thresholds", ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"], "tIoU thresholds.")
flags.DEFINE_string("subset", None, "Evaluate only videos of this subset (e.g. test, validation).")
flags.DEFINE_enum("remove_ambiguous", "auto", ["auto", "true", "false"], "Drop predictions on Ambiguous segments.")
flags.DEFINE_string("output", None, "Write the result JSON here.")
flags.DEFINE_string("detections_output", None, "Model mode: also write the detections (ActivityNet JSON) here.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Model mode: which checkpoint to evaluate.")


def parse_thresholds(values: list[str]) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise D2NetInputError(f"--tiou_thresholds: expected comma-separated numbers, got {','.join(values)!r}")


def evaluate_model_dir(model_dir: str, checkpoint: str = "best", detections_output: str | None = None) -> dict:
    """Runs the model of `model_dir` over the evaluation split named by the data flags and evaluates it
    (`inference.evaluate_model_dir`; --localization, when given, overrides the stored settings)."""
    from d2net_tf.evaluation import write_detections_json
    from d2net_tf.inference import evaluate_model_dir as evaluate
    from d2net_tf.model_dir import read_model_dir

    record = read_model_dir(model_dir)
    _, test_set = split_train_test(dataset_from_flags())
    thresholds = parse_thresholds(FLAGS.tiou_thresholds) if FLAGS["tiou_thresholds"].present else None
    remove = {"auto": None, "true": True, "false": False}[FLAGS.remove_ambiguous]
    result, detections = evaluate(
        model_dir, test_set, which=checkpoint, preset=FLAGS.localization if FLAGS["localization"].present else None,
        protocol=FLAGS.protocol, tiou_thresholds=thresholds, remove_ambiguous=remove,
        wtalc_options=training_flags.wtalc_options_from_flags(record.run))
    if detections_output:
        write_detections_json(detections_output, detections, test_set.classlist)
    return result


def write_result(result: dict, output: str | None) -> None:
    print(format_results_table(result))
    if output:
        write_json_atomic(output, result)
        print(f"wrote {output}")


@run_cli
def main(argv):
    del argv
    if FLAGS.model_dir:
        result = evaluate_model_dir(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.detections_output)
        write_result(result, FLAGS.output)
        return 0
    if not FLAGS.ground_truth or not FLAGS.predictions:
        raise D2NetInputError("--ground_truth and --predictions are required")
    remove = {"auto": None, "true": True, "false": False}[FLAGS.remove_ambiguous]
    result = evaluate_predictions_file(
        FLAGS.ground_truth, FLAGS.predictions, parse_thresholds(FLAGS.tiou_thresholds),
        FLAGS.subset, FLAGS.protocol, remove, training_flags.wtalc_options_from_flags(),
    )
    write_result(result, FLAGS.output)
    return 0


if __name__ == "__main__":
    app.run(main)
