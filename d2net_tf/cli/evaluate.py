"""Evaluates temporal action detections against ground truth (mAP at tIoU thresholds).

    d2net-evaluate --ground_truth GT.json --predictions PRED.json \
        [--tiou_thresholds 0.1,0.2,0.3,0.4,0.5,0.6,0.7] [--subset test] [--protocol anet|wtalc] \
        [--remove_ambiguous auto|true|false] [--output out.json]
    d2net-evaluate --model_dir DIR --data_dir DATA [--output out.json] [--detections_output det.json]
    (from a checkout: python -m trainers.evaluate ...)

`--ground_truth` is an ActivityNet-style JSON or a W-TALC annotation folder. With
`--model_dir` the trained model (its selected checkpoint) runs over the evaluation split of
the data in DATA, then its detections are evaluated; the benchmark, the feature width, the
protocol, the W-TALC evaluator options and the localization settings are the run's (its
config.json), and a flag given here overrides them. Prints a table (with the protocol) and
writes the result JSON.
"""

from __future__ import annotations

from absl import flags, logging

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.compute_flags import start_runtime
from d2net_tf.cli.data_flags import define_data_flags
from d2net_tf.cli.inference_flags import define_inference_flags
from d2net_tf.cli.training_flags import define_preset_flag, define_wtalc_flags, wtalc_options_from_flags
from d2net_tf.errors import D2NetInputError

flags.DEFINE_string("ground_truth", None, "ActivityNet-style ground-truth JSON or a W-TALC annotation folder "
                    "(then pass --subset, e.g. test).")
flags.DEFINE_string("predictions", None, "ActivityNet-format results JSON.")
flags.DEFINE_list("tiou_thresholds", ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"],
                  "tIoU thresholds (model mode default: the benchmark's).")
flags.DEFINE_string("subset", None, "Evaluate only videos of this subset (e.g. test, validation).")
flags.DEFINE_enum("protocol", "anet", ["anet", "wtalc"], "Evaluation protocol (model mode default: the run's).")
flags.DEFINE_enum("remove_ambiguous", "auto", ["auto", "true", "false"], "Drop predictions on Ambiguous segments.")
flags.DEFINE_string("output", None, "Write the result JSON here.")
flags.DEFINE_string("model_dir", None, "Model mode: the trained model directory (d2net-fit --model_dir).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Model mode: which checkpoint to evaluate.")
flags.DEFINE_string("detections_output", None, "Model mode: also write the detections (ActivityNet JSON) here.")
flags.DEFINE_enum("localization", None, ["official", "paper"],
                  "Model mode: post-processing preset (Sec. 3.3); default: the settings stored in --model_dir.")
define_data_flags()  # model mode: the data to evaluate on
define_preset_flag()  # ground-truth mode: the W-TALC evaluator options of this preset
define_wtalc_flags()
define_inference_flags()  # model mode
FLAGS = flags.FLAGS


def parse_thresholds(values: list[str]) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise D2NetInputError(f"--tiou_thresholds: expected comma-separated numbers, got {','.join(values)!r}")


def evaluate_model_dir() -> dict:
    """The model of --model_dir on the evaluation split of --data_dir (run settings from config.json)."""
    from d2net_tf.data.benchmarks import find_benchmark
    from d2net_tf.data.loading import load_dataset, split_train_test
    from d2net_tf.evaluation import write_detections_json
    from d2net_tf.inference import evaluate_model_dir as evaluate
    from d2net_tf.model_dir import read_model_dir

    record = read_model_dir(FLAGS.model_dir)
    trained_on = find_benchmark(record.dataset)
    benchmark = FLAGS.dataset if FLAGS["dataset"].present or trained_on is None else trained_on.name
    feature_dim = FLAGS.feature_dim if FLAGS["feature_dim"].present else record.config.model.feature_dim
    dataset = load_dataset(FLAGS.data_dir, benchmark, FLAGS.data_layout, feature_dim=feature_dim,
                           min_snippets=FLAGS.min_snippets,
                           synthetic=None if FLAGS.synthetic == "none" else FLAGS.synthetic,
                           synthetic_seed=FLAGS.synthetic_seed, warn=logging.warning)
    _, test_set = split_train_test(dataset)
    result, detections = evaluate(
        FLAGS.model_dir, test_set, which=FLAGS.checkpoint, preset=FLAGS.localization,
        protocol=FLAGS.protocol if FLAGS["protocol"].present else record.run.get("protocol", FLAGS.protocol),
        tiou_thresholds=parse_thresholds(FLAGS.tiou_thresholds) if FLAGS["tiou_thresholds"].present else None,
        remove_ambiguous={"auto": None, "true": True, "false": False}[FLAGS.remove_ambiguous],
        wtalc_options=wtalc_options_from_flags(record.run), conv_algorithm=FLAGS.conv_algorithm,
        precision=FLAGS.precision)
    if FLAGS.detections_output:
        write_detections_json(FLAGS.detections_output, detections, test_set.classlist)
    return result


@run_cli
def main(argv):
    del argv
    from d2net_tf.evaluation import evaluate_predictions_file, format_results_table
    from d2net_tf.jsonio import write_json_atomic

    if FLAGS.model_dir:
        if not FLAGS.data_dir:
            raise D2NetInputError("--model_dir needs --data_dir (the data to evaluate on)")
        start_runtime()  # before TensorFlow's first op
        result = evaluate_model_dir()
    elif FLAGS.ground_truth and FLAGS.predictions:
        result = evaluate_predictions_file(
            FLAGS.ground_truth, FLAGS.predictions, parse_thresholds(FLAGS.tiou_thresholds), FLAGS.subset,
            FLAGS.protocol, {"auto": None, "true": True, "false": False}[FLAGS.remove_ambiguous],
            wtalc_options_from_flags())
    else:
        raise D2NetInputError("give --ground_truth and --predictions, or --model_dir and --data_dir")
    print(format_results_table(result))
    if FLAGS.output:
        write_json_atomic(FLAGS.output, result)
        print(f"wrote {FLAGS.output}")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()
