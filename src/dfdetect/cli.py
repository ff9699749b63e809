"""The `dfdetect` command: one subcommand per job; parse -> config -> one library call -> print."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from dfdetect.conventions import TTA_CHOICES
from dfdetect.data.images import DEFAULT_MAX_PIXELS
from dfdetect.faces import AUTO_CROP_BELOW, DEFAULT_MARGIN, TRAINING_MARGIN
from dfdetect.quality import NOISY, SMALL
from dfdetect.run_folder import RunFolder

logger = logging.getLogger("dfdetect")

EXAMPLE_REAL_RUN = "dfdetect train --data ../shared/data/dfdc-faces --model own_cnn --image-size 128 --out runs/own_cnn"


def tqdm_progress(iterable: Iterable[Any], description: str, total: int) -> Iterable[Any]:
    """A progress bar on terminals; plain iteration when output is redirected."""
    from tqdm import tqdm

    return tqdm(iterable, desc=description, total=total, leave=False, dynamic_ncols=True, disable=None)


def tqdm_bar(total: int, description: str, unit: str) -> Any:
    """A progress bar to update by hand, on terminals only (stderr); a no-op when output is redirected."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True, disable=None)


def parse_assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


TRAIN_ONLY_OPTIONS = ("out",)
"""Config fields that only `train` takes on its command line (experiment and tune have their own --out)."""


def config_options() -> list[Any]:
    """The TrainConfig fields that become command-line options: every plain field (nested ones via --set)."""
    import dataclasses

    from dfdetect.config import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if not dataclasses.is_dataclass(f.type) and f.name != "augment"]


def add_train_options(parser: argparse.ArgumentParser, train: bool = False) -> None:
    """One option per TrainConfig field (help from the field), and the options of every training job.
    None means 'not given', so a config file or recipe below is not overridden."""
    import typing

    from dfdetect.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in config_options():
        if field.name in TRAIN_ONLY_OPTIONS and not train:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool and field.default is True:
            negative = "--no-" + field.name.replace("_", "-")
            parser.add_argument(
                negative, dest=field.name, action="store_const", const=False, help=field.metadata["help"]
            )
            continue
        if kind is bool:
            parser.add_argument(flag, action="store_const", const=True, help=field.metadata.get("help"))
            continue
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        parser.add_argument(
            flag, type=kind, choices=field.metadata.get("choices"), help=field.metadata.get("help"), default=None
        )
    parser.add_argument("--config", type=Path, help="YAML config; command-line options override it")
    parser.add_argument(
        "--recipe", help="a shipped recipe under the config file: study (the defaults) or strong (dfdetect's own)"
    )
    parser.add_argument("--no-augment", action="store_true", help="turn every training augmentation off")
    parser.add_argument(
        "--set",
        action="append",
        type=parse_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="any config key, e.g. --set augment.jpeg_p=0.2 (repeatable)",
    )
    parser.add_argument(
        "--track", choices=("mlflow", "tensorboard"), help="log config, metrics and artifacts to MLflow or TensorBoard"
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking server or database (default: OUT/mlruns, SQLite)")


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys the command line sets (None = not given)."""
    from dfdetect.data.transforms import AugmentConfig

    overrides: dict[str, Any] = {field.name: getattr(args, field.name, None) for field in config_options()}
    if overrides["weights_file"] is not None:
        overrides["pretrained"] = True
    if getattr(args, "no_augment", False):
        overrides["augment"] = AugmentConfig.none().__dict__
    overrides.update(dict(getattr(args, "set", [])))
    return overrides


def add_crop_flags(parser: argparse.ArgumentParser, always: str, never: str) -> None:
    """--crop-face (framing `always`) and --no-crop-face (`never`) into `crop_face`; neither: `auto`."""
    parser.add_argument(
        "--crop-face", dest="crop_face", action="store_const", const="always", default="auto", help=always
    )
    parser.add_argument("--no-crop-face", dest="crop_face", action="store_const", const="never", help=never)


def add_face_options(parser: argparse.ArgumentParser, crop: str) -> None:
    """--crop-face / --no-crop-face (neither: auto), --face-detector and --face-margin, shared by predict, evaluate
    and serve (`crop` says what is done with the faces)."""
    add_crop_flags(
        parser,
        f"{crop}, in every image with a face. Default (auto): only in images that show much more than a face "
        f"(the face's crop spans under {AUTO_CROP_BELOW} of the shorter side); face crops are scored as they are",
        "score every image as it is, face or not (no face finding: fastest on face crops)",
    )
    parser.add_argument(
        "--face-detector", choices=("mtcnn", "haar"), default="mtcnn", help="MTCNN (default) or OpenCV's Haar cascade"
    )
    parser.add_argument(
        "--face-margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"share of the face box added on each side of the crop (default {DEFAULT_MARGIN}, chosen on other "
        f"sources; the DFDC training crops are about {TRAINING_MARGIN})",
    )


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """--model, --runtime, --device and --threshold, as predict and serve take them."""
    from dfdetect.pretrained import DEFAULT_DETECTOR
    from dfdetect.runtime import RUNTIMES

    parser.add_argument(
        "--model",
        type=Path,
        help=f"run folder, checkpoint, exported .onnx, or shipped detector (default: {DEFAULT_DETECTOR})",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto: ONNX Runtime for .onnx files, OpenVINO on CPU when installed, else PyTorch",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threshold",
        help="real when P(Real) >= this number, or the threshold of a policy stored with the model (eer, balanced, "
        "cost:2, fpr:0.01, ...; default: the model's own policy, else 0.5)",
    )


def default_model_path() -> Path:
    from dfdetect.pretrained import default_detector_path

    return default_detector_path()


def load_scoring_model(args: argparse.Namespace) -> Any:
    """The predictor --model (or the shipped default), --runtime, --device and --threshold ask for."""
    from dfdetect.runtime import load_predictor

    model = args.model or default_model_path()
    return load_predictor(
        model,
        runtime=args.runtime,
        device=args.device,
        threshold=args.threshold,
        noise_caution=getattr(args, "noise_caution", None),
        small_caution=getattr(args, "small_caution", None),
    )


def add_caution_options(parser: argparse.ArgumentParser) -> None:
    from dfdetect.quality import NOISE_CAUTION, SMALL_CAUTION

    parser.add_argument(
        "--noise-caution",
        type=float,
        metavar="SIGMA",
        help="flag scores of inputs with more estimated noise than this many grey levels (default: "
        f"{NOISE_CAUTION:g}, where the default detector was measured unreliable; 0 turns it off)",
    )
    parser.add_argument(
        "--small-caution",
        type=int,
        metavar="PX",
        help="flag scores of images (or faces cut from them) whose shorter side is under this many pixels, or under "
        "the network's input size if smaller (default: the detector's own limit, where `dfdetect calibrate "
        f"--small-caution` stored one, else {SMALL_CAUTION}, below which the default detector was measured "
        "unreliable; 0 turns it off)",
    )


def print_data_summary(summary: dict[str, dict[str, int]], bad_files: int, train_available: int) -> None:
    from dfdetect.reporting.tables import markdown_table

    rows = [
        [split, counts["Real"], counts["Fake"], counts["Real"] + counts["Fake"]] for split, counts in summary.items()
    ]
    print(markdown_table(["split", "Real", "Fake", "total"], rows))
    print(f"(Train: {sum(summary['Train'].values())} used of {train_available}; {bad_files} bad file(s) skipped)")


def command_models(args: argparse.Namespace) -> int:
    from dfdetect.models import count_parameters, create_model, list_models, model_entry
    from dfdetect.pretrained import DEFAULT_DETECTOR, shipped_detectors
    from dfdetect.reporting.tables import markdown_table

    rows = []
    for name in list_models():
        model = create_model(name)
        entry = model_entry(name)
        rows.append(
            [
                name,
                f"{count_parameters(model):,}",
                "yes" if entry.pretrained_available else "no",
                model.preprocessing.input_size,
                entry.description,
            ]
        )
    print(markdown_table(["model", "parameters", "pretrained", "input", "description"], rows))
    print("\nAlso: timm/<name> builds any timm model (random init, or --weights-file PATH).")
    shipped = [
        [
            detector.name + (" (default)" if detector.name == DEFAULT_DETECTOR else ""),
            detector.version,
            detector.release.get("architecture", ""),
            *release_facts(detector.release),
            detector.release.get("summary", ""),
            detector.release.get("card", ""),
        ]
        for detector in shipped_detectors()
    ]
    if shipped:
        print("\nTrained detectors shipped with dfdetect (`--model NAME`):\n")
        columns = ["detector", "version", "architecture", "Test AUC", "threshold (P(Real))", "summary", "model card"]
        print(markdown_table(columns, shipped))
        print(
            "\nTest AUC: on the Test split of the data it was trained on (its card says which); threshold: the stored"
            " policy it labels at, on P(Real); --threshold NAME takes another stored one."
        )
    return 0


def release_facts(release: dict[str, Any]) -> list[str]:
    """A shipped detector's Test AUC and the threshold it labels at (policy and value), as `models` lists them."""
    auc = release.get("evaluation", {}).get("Test", {}).get("metrics", {}).get("auc")
    calibration = release.get("calibration") or {}
    threshold = calibration.get("threshold")
    return [
        "" if auc is None else f"{auc:.3f}",
        "" if threshold is None else f"{calibration.get('policy', '?')} ({threshold:.3f})",
    ]


def command_train(args: argparse.Namespace) -> int:
    from dfdetect.config import load_config
    from dfdetect.engine.trainer import fit, prepare_data
    from dfdetect.recipes import read_recipe
    from dfdetect.tracking import create_tracker

    overrides = train_overrides(args)
    config_file = args.config
    if args.resume is not None:
        config_file = RunFolder(args.resume).config
        overrides["out"] = args.resume
    recipe = read_recipe(args.recipe) if args.resume is None else {}  # a resumed run's config.yaml is complete
    config = load_config(config_file, overrides, base=recipe)
    if config.data is None or config.out is None:
        raise SystemExit("error: train needs --data DIR and --out RUN_DIR (or both in --config)")
    data = prepare_data(config)
    print(f"dataset {config.data}:")
    print_data_summary(data.summary(), len(data.bad_files), data.train_available)
    tracker = create_tracker(args.track, config.out, args.tracking_uri)
    with tracker.run(config.out.name, config.to_dict()):
        result = fit(config, data=data, resume=args.resume is not None, progress=tqdm_progress, tracker=tracker)
    best_auc = next((row["val_auc"] for row in result.history if row["epoch"] == result.best_epoch), float("nan"))
    print(
        f"\nbest epoch {result.best_epoch} by {config.monitor} (val loss {result.best_val_loss:.4f}, val AUC "
        f"{best_auc:.4f}) of {result.epochs_run} in {result.seconds / 60:.1f} min"
        f"{'; stopped early' if result.stopped_early else ''}"
    )
    print(f"run folder: {result.run_dir}  (evaluate: dfdetect evaluate --model {result.run_dir} --data {config.data})")
    return 0


def named_paths(values: list[str], what: str) -> dict[str, Path]:
    """`NAME=PATH` or `PATH` (named after its folder) for each repeated --model / --data value."""
    named: dict[str, Path] = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        name = name or Path(path).name
        if name in named:
            raise SystemExit(f"error: two {what}s are called {name!r}; name them: --{what} NAME=PATH")
        named[name] = Path(path)
    return named


def command_evaluate(args: argparse.Namespace) -> int:
    from dfdetect import pretrained
    from dfdetect.engine.checkpoint import resolve_checkpoint
    from dfdetect.evaluation import cross_evaluate, score_split, write_evaluation
    from dfdetect.faces import face_cropper
    from dfdetect.reporting.tables import (
        CROSS_METRICS,
        LABEL_NOTE,
        cross_table,
        markdown_table,
        metrics_table,
        table2,
    )
    from dfdetect.runtime.torch_backend import TorchPredictor

    models, datasets = named_paths(args.model, "model"), named_paths(args.data, "data")
    scoring: dict[str, Any] = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threshold": args.threshold,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "progress": tqdm_progress,
        "face_crop": face_cropper(args.crop_face, args.face_detector, args.face_margin, args.faces_file),
    }
    if len(models) > 1 or len(datasets) > 1:
        out = args.out or Path("evaluation")
        results = cross_evaluate(models, datasets, out, args.split, device=args.device, **scoring)
        for metric in CROSS_METRICS:
            print(f"\n{metric} on {args.split}:\n{cross_table(results, metric)}")
        print(f"\n{LABEL_NOTE}\nwrote {out}/tables.md, {out}/results.json and {out}/<model>/<data>/")
        return 0
    [(name, model)], [data] = models.items(), datasets.values()
    predictor = TorchPredictor.from_checkpoint(model, device=args.device, threshold=args.threshold)
    evaluation = score_split(predictor, data, args.split, strict=args.strict_data, **scoring)
    run = RunFolder.of_checkpoint(resolve_checkpoint(model))
    if run.root == pretrained.folder():  # a shipped detector: never write into the installed package
        run = RunFolder(Path(f"eval-{predictor.metadata['release']['name']}"))
    out = args.out or run.evaluation(evaluation.folder.name) / "metrics.json"
    name = predictor.model_label
    write_evaluation(evaluation, out, args.per_image, title=name)
    print(f"{name} on {evaluation.folder} ({len(evaluation.samples)} images, {len(evaluation.bad_files)} skipped)")
    if crop := evaluation.metrics["face_crop"]:
        print(
            f"framing {crop['mode']}: {crop['cropped']} cut to their largest face, {crop['already_framed']} "
            f"already framed like a face crop, {crop['no_face']} without a face (scored as they are)"
        )
    print()
    print(table2({name: evaluation.metrics}))
    print()
    print(metrics_table(evaluation.metrics))
    if evaluation.metrics["policies"]:
        rows = [[name, *values.values()] for name, values in evaluation.metrics["policies"].items()]
        print("\nat each threshold policy stored by `dfdetect calibrate`:")
        print(markdown_table(["policy", "threshold", "accuracy", "sensitivity", "specificity"], rows))
    print(f"\n{LABEL_NOTE}\nwrote {out}, with confusion_matrix.png, roc_curve.png and reliability.png beside it")
    return 0


def command_calibrate(args: argparse.Namespace) -> int:
    from dfdetect.evaluation import calibrate_checkpoint
    from dfdetect.reporting.tables import markdown_table

    limit = args.small_caution
    calibration, path = calibrate_checkpoint(
        args.model, args.data, args.split, args.policy, args.device, args.workers, tqdm_progress, small_caution=limit
    )
    print(f"calibrated on {calibration.split}: temperature {calibration.temperature:.4f}")
    print(
        f"expected calibration error (15 bins): {calibration.ece_before:.4f} before, {calibration.ece_after:.4f} after"
    )
    rows = [
        [name, f"{value:.4f}", "<- used" if name == calibration.policy else ""]
        for name, value in calibration.thresholds.items()
    ]
    print(markdown_table(["threshold policy", "P(Real) threshold", ""], rows))
    if calibration.small_caution is not None:
        print(f"small-input caution: under {calibration.small_caution} px on the shorter side")
    print(f"stored in {path} (and its .json); predict, serve, evaluate and export now use them")
    return 0


def command_route(args: argparse.Namespace) -> int:
    from dfdetect.ensembles import route

    path = route(args.model, args.noisy_model, args.out, noise_limit=args.noise_limit)
    print(
        f"wrote {path}: {args.model}, and {args.noisy_model} for inputs noisier than {args.noise_limit:g} grey levels"
    )
    print(
        f"the calibration of {args.model} carried over; refit it with: dfdetect calibrate --model {args.out} "
        "--data DATA"
    )
    return 0


def command_ensemble(args: argparse.Namespace) -> int:
    from dfdetect.ensembles import combine
    from dfdetect.errors import ConfigError

    try:
        weights = [float(weight) for weight in args.weights.split(",")] if args.weights else None
    except ValueError:
        raise ConfigError(f"--weights {args.weights!r}: give numbers separated by commas, e.g. 0.3,0.7") from None
    path = combine(args.model, args.out, tta=args.tta, average=args.average, weights=weights)
    kind = "averaged in weight space into one network" if args.average else "a mean-logit ensemble"
    if weights is not None:
        kind += f" weighted {args.weights}"
    print(f"wrote {path}: {len(args.model)} model(s), {kind}, test-time augmentation {args.tta}")
    print(f"next: dfdetect calibrate --model {args.out} --data DATA   (the members' calibration does not carry over)")
    return 0


def command_robustness(args: argparse.Namespace) -> int:
    from dfdetect.robustness import run_robustness

    _, written = run_robustness(
        args.model or default_model_path(),
        args.data,
        args.out,
        args.split,
        args.perturbations,
        args.seed,
        runtime=args.runtime,
        device=args.device,
        threshold=args.threshold,
        levels=args.levels,
    )
    print(written[1].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(path) for path in written[:2])} and {len(written) - 2} plot(s) in {args.out}")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from dfdetect.demo import run_demo
    from dfdetect.reporting.tables import LABEL_NOTE, table2

    print("dfdetect demo: the data is SYNTHETIC (cartoon faces; the fakes carry upsampling artefacts).")
    print(f"It shows the pipeline end to end, not real-world accuracy. Writing to {args.out}\n")
    results = run_demo(args.out, epochs=args.epochs, progress=tqdm_progress)
    print("\nTable 2 on the synthetic Test split:")
    rows = {r.model: {**r.metrics, "epochs": r.epochs, "minutes": r.seconds / 60} for r in results}
    print(table2(rows, extra_columns=("epochs", "minutes")))
    print(f"\n{LABEL_NOTE}")
    print(f"Runs, curves and confusion matrices: {args.out}/<model>/")
    print(f"\nOn a real dataset (Train/Validation/Test x Real/Fake folders):\n  {EXAMPLE_REAL_RUN}")
    return 0


def command_experiment(args: argparse.Namespace) -> int:
    from dfdetect.experiment import run_experiment
    from dfdetect.recipes import read_recipe
    from dfdetect.reporting.tables import LABEL_NOTE, table2
    from dfdetect.tracking import create_tracker

    overrides = train_overrides(args)
    for key in ("data", "model", "out"):
        overrides.pop(key, None)
    config_files = dict(args.model_config)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    command = "dfdetect " + " ".join(sys.argv[1:]) if sys.argv[1:] else "dfdetect experiment"
    tracker = create_tracker(args.track, args.out, args.tracking_uri)
    outcomes, report = run_experiment(
        args.data,
        models,
        args.out,
        overrides,
        config_files,
        command,
        tqdm_progress,
        read_recipe(args.recipe),
        tracker,
        named_paths(args.eval, "eval"),
        args.crop_face,
    )
    rows = {o.model: {**o.metrics, "epochs": o.epochs, "minutes": o.minutes} for o in outcomes}
    print(table2(rows, extra_columns=("epochs", "minutes")))
    print(f"\n{LABEL_NOTE}\nreport: {report} and {report.with_suffix('.html')}")
    return 0


def command_tune(args: argparse.Namespace) -> int:
    from dfdetect.config import load_config
    from dfdetect.recipes import read_recipe
    from dfdetect.tracking import create_tracker
    from dfdetect.tuning import load_search_space, tune

    overrides = train_overrides(args)
    overrides["out"] = None
    if overrides["fraction"] is None:
        overrides["fraction"] = 0.1  # the study searched on 10% of Train
    base = load_config(args.config, overrides, base=read_recipe(args.recipe))
    if base.data is None:
        raise SystemExit("error: tune needs --data DIR")
    space = load_search_space(args.search_space, base)
    print(
        f"search: {len(space)} hyperparameter(s), {args.trials} trial(s), sampler {args.sampler}, "
        f"{base.fraction:.0%} of Train"
    )
    result = tune(
        base,
        args.out,
        trials=args.trials,
        space=space,
        sampler=args.sampler,
        storage=args.storage,
        study_name=args.study,
        prune=args.prune,
        tracker=create_tracker(args.track, args.out, args.tracking_uri),
        progress=tqdm_progress,
    )
    print(result.files["table1"].read_text(encoding="utf-8"))
    print(f"trials: {result.files['trials']}\nnext: dfdetect train --config {result.files['best']} --out RUN_DIR")
    return 0


def caution_marks(codes: Sequence[str], noise: float | None) -> str:
    """The table's short mark of a row's `caution_codes`: `small`, `noise 3.2`, or both."""
    marks = {SMALL: "small", NOISY: f"noise {noise:.1f}" if noise is not None else "noise"}
    return ", ".join(marks[code] for code in codes)


def format_predictions(rows: list[dict[str, Any]], fmt: str, decision: str = "") -> str:
    """table, csv, json or jsonl text for prediction rows (Prediction.to_dict(), and video rows with their
    frames_read, faces_found and aggregate); the table's first line names the model and `decision`, the rule
    its labels follow (`BasePredictor.decision`)."""
    import csv
    import io

    from dfdetect.runtime.results_file import csv_row, fieldnames

    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames(rows))
        writer.writeheader()
        writer.writerows(csv_row(row) for row in rows)
        return buffer.getvalue()
    width = max([len("path"), *(len(row["path"]) for row in rows)])
    models = sorted({row["model"] for row in rows if row["model"]})
    lines = [f"model: {', '.join(models)}" + (f"; {decision}" if decision else "")] if models else []
    lines.append(f"{'path':<{width}}  {'label':<5}  {'p_fake':>6}  {'p_real':>6}")
    for row in rows:
        if row["error"]:
            lines.append(f"{row['path']:<{width}}  error: {row['error']}")
            continue
        line = f"{row['path']:<{width}}  {row['label']:<5}  {row['p_fake']:>6.3f}  {row['p_real']:>6.3f}"
        if "frames_read" in row:
            line += f"  ({row['faces_found']} of {row['frames_read']} frames with a face, {row['aggregate']})"
        elif row.get("face") is not None:
            line += f"  ({row['faces_found']} face(s); face #{row['face']} decides)"
        if row.get("caution"):
            line += "  ! " + caution_marks(row["caution_codes"], row["noise"])
        lines.append(line)
    cautions = [row["caution"] for row in rows if row.get("caution")]
    if cautions:
        lines.append(f"! {len(cautions)} input(s) with a caution, e.g. {cautions[0]}")
    return "\n".join(lines) + "\n"


def video_rows(predictor: Any, videos: list[Path], args: argparse.Namespace) -> list[Any]:
    """One VideoPrediction per video, scored by `predictor`."""
    from dfdetect.video import predict_video

    results = []
    for path in videos:
        result = predict_video(
            path,
            predictor.predict_images,
            predictor.label_of,
            frames=args.frames,
            how=args.aggregate,
            detector=args.face_detector,
            margin=args.face_margin,
            noise=predictor.input_noise,
            cautions_of=predictor.cautions_of,
        )
        result.model = predictor.model_label
        results.append(result)
    return results


def open_csv(path: Path, header: list[str], append: bool) -> Any:
    """A CSV file to write rows to: started afresh with `header`, or with `append` added to (the header only where
    the file is empty)."""
    import csv

    from dfdetect.runtime.results_file import open_rows

    handle, fresh = open_rows(path, append)
    if fresh:
        csv.writer(handle).writerow(header)
    return handle


PER_FACE_COLUMNS = ["path", "face", "box", "p_fake", "noise", "caution", "caution_codes"]
PER_FRAME_COLUMNS = ["path", "frame", "seconds", "box", "p_fake", "noise"]


def write_per_face(photos: list[Any], path: Path, append: bool = False) -> None:
    """CSV: one row per face scored: photo, face index (largest first), box, p_fake, estimated noise, caution and
    its codes."""
    import csv

    from dfdetect.photos import box_text

    with open_csv(path, PER_FACE_COLUMNS, append) as handle:
        writer = csv.writer(handle)
        for photo in photos:
            for face in photo.faces:
                noise = "" if face.noise is None else f"{face.noise:.2f}"
                score = f"{face.p_fake:.6f}"
                caution, codes = face.caution or "", " ".join(face.caution_codes)
                writer.writerow([photo.row["path"], face.face, box_text(face.box), score, noise, caution, codes])


def write_per_frame(videos: list[Any], path: Path, append: bool = False) -> None:
    """CSV: one row per frame read: video, frame index, seconds, face box, p_fake, the face's estimated noise."""
    import csv

    with open_csv(path, PER_FRAME_COLUMNS, append) as handle:
        writer = csv.writer(handle)
        for video in videos:
            for frame in video.frames:
                box = " ".join(f"{v:.1f}" for v in frame.box) if frame.box else ""
                p_fake = "" if frame.p_fake is None else f"{frame.p_fake:.6f}"
                noise = "" if frame.noise is None else f"{frame.noise:.2f}"
                writer.writerow([video.path, frame.frame, f"{frame.seconds:.3f}", box, p_fake, noise])


PREDICT_STEP = 256
"""`predict --out FILE` in CSV or JSON lines writes its rows after about this many images' work (a video counts as
the frames it reads): what a crash can lose."""


def predict_batches(paths: list[Path], step: int, frames: int) -> list[list[Path]]:
    """`paths` in order, cut into batches of at least `step` images' work each (the last may be less), a video
    counting as its `frames`."""
    from dfdetect.video import is_video

    batches: list[list[Path]] = [[]]
    work = 0
    for path in paths:
        if work >= step:
            batches.append([])
            work = 0
        batches[-1].append(path)
        work += max(frames, 1) if is_video(path) else 1
    return batches if paths else []


class Scored(NamedTuple):
    """What `predict`'s rows for a batch of files came from, for --per-face, --per-frame and --explain."""

    photos: list[Any]
    """PhotoPrediction per image, when images are framed (the default)."""
    predictions: list[Any]
    """Prediction per image, when they are scored as they are (`--no-crop-face`)."""
    videos: list[Any]
    """VideoPrediction per video."""


def score_files(predictor: Any, paths: list[Path], args: argparse.Namespace) -> tuple[list[dict[str, Any]], Scored]:
    """`predict`'s rows for `paths`, in order, and what they came from."""
    from dfdetect.photos import predict_photos
    from dfdetect.video import is_video

    videos = [path for path in paths if is_video(path)]
    images = [path for path in paths if not is_video(path)]
    framing = (args.face_detector, args.face_margin, args.min_face, args.crop_face, args.batch_size)
    photos = predict_photos(predictor, images, *framing) if args.crop_face != "never" else []
    predictions = predictor.predict_paths(images, batch_size=args.batch_size) if args.crop_face == "never" else []
    scored_videos = video_rows(predictor, videos, args)
    by_path: dict[str, dict[str, Any]] = {p.path: p.to_dict() for p in predictions}
    by_path.update({photo.row["path"]: photo.row for photo in photos})
    for video in scored_videos:
        p_real = None if video.p_fake is None else 1 - video.p_fake
        by_path[video.path] = {**video.to_dict(), "p_real": p_real, "calibrated": predictor.is_calibrated}
    return [by_path[str(path)] for path in paths], Scored(photos, predictions, scored_videos)


def explain_files(predictor: Any, scored: Scored, args: argparse.Namespace) -> None:
    """--explain: Grad-CAM overlays of what `score_files` scored (each face of a photo cut to its faces)."""
    from dfdetect.explain import write_explanations, write_face_explanations
    from dfdetect.runtime.torch_backend import TorchPredictor

    assert isinstance(predictor, TorchPredictor)  # supports_explain: a PyTorch model is loaded
    if scored.photos:
        write_face_explanations(predictor, scored.photos, args.explain, args.face_margin)
    elif scored.predictions:
        write_explanations(predictor, scored.predictions, args.explain)


def predict_columns(paths: list[Path], crop_face: str) -> list[str]:
    """The CSV columns of `predict`'s rows for these inputs, known before any is scored (a streamed file's)."""
    from dfdetect.runtime.results_file import fieldnames
    from dfdetect.video import is_video

    extra: set[str] = set()
    if any(is_video(path) for path in paths):
        extra |= {"frames_read", "faces_found", "aggregate"}
    if crop_face != "never" and not all(is_video(path) for path in paths):
        extra |= {"faces_found", "face", "box"}
    return fieldnames([], extra)


def command_predict(args: argparse.Namespace) -> int:
    from dfdetect.runtime import expand_paths
    from dfdetect.runtime.results_file import STREAMED_FORMATS, ResultsFile, keep_rows_of, scored_paths

    fmt = args.format or ("table" if sys.stdout.isatty() and args.out is None else "csv")
    streamed = args.out is not None and fmt in STREAMED_FORMATS
    if args.resume and not streamed:
        print("error: --resume needs --out FILE in --format csv or jsonl", file=sys.stderr)
        return 2
    predictor = load_scoring_model(args)
    if args.explain is not None and not predictor.supports_explain:
        print("error: --explain needs a PyTorch checkpoint (Grad-CAM), not an ONNX model", file=sys.stderr)
        return 2
    paths = expand_paths(args.paths)
    if not paths:
        print("error: no images found in the given paths", file=sys.stderr)
        return 2
    columns = predict_columns(paths, args.crop_face)
    done = scored_paths(args.out, fmt, columns) if args.resume else {}
    others = sorted({str(model) for model in done.values() if model and model != predictor.model_label})
    if others:
        print(f"error: {args.out} holds scores by {', '.join(others)}, not by {predictor.model_label}: resume "
              "with the model it was started with, or write to a new file", file=sys.stderr)  # fmt: skip
        return 2
    todo = [path for path in paths if str(path) not in done]
    for side_file, header in ((args.per_face, PER_FACE_COLUMNS), (args.per_frame, PER_FRAME_COLUMNS)):
        if args.resume and side_file is not None:
            keep_rows_of(side_file, done, header)
    if args.resume:
        logger.info("resuming: %d of %d file(s) already in %s, scoring the other %d", len(paths) - len(todo),
                    len(paths), args.out, len(todo))  # fmt: skip
    elif streamed and args.out.is_file() and args.out.stat().st_size:
        logger.info("%s exists: written anew (--resume would add the files it lacks instead)", args.out)
    results = ResultsFile(args.out, fmt, columns, append=args.resume) if streamed else None
    batches = predict_batches(todo, PREDICT_STEP, args.frames)
    rows: list[dict[str, Any]] = []
    progress = tqdm_bar(total=len(todo), description="scoring", unit="file")
    try:
        for index, batch in enumerate(batches):
            chunk, scored = score_files(predictor, batch, args)
            append = args.resume or index > 0
            if args.per_face is not None:
                write_per_face(scored.photos, args.per_face, append)
            if args.per_frame is not None:
                write_per_frame(scored.videos, args.per_frame, append)
            if args.explain is not None:
                explain_files(predictor, scored, args)
            rows += chunk
            progress.update(len(batch))
            if results is not None:
                results.write(chunk)
                logger.info("%d of %d file(s) scored, in %s", len(paths) - len(todo) + len(rows), len(paths), args.out)
    finally:
        progress.close()
        if results is not None:
            results.close()
    if results is None:
        text = format_predictions(rows, fmt, predictor.decision)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    if args.explain is not None:
        print(f"Grad-CAM heatmaps: {args.explain}", file=sys.stderr)
    failed = sum(1 for row in rows if row["error"])
    if failed:
        print(f"{failed} of {len(rows)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def command_export(args: argparse.Namespace) -> int:
    from dfdetect.runtime.export import export_onnx

    out = export_onnx(args.model, args.out, opset=args.opset)
    print(f"wrote {out} (input 'images' N x 3 x H x W normalised float32, output 'logits' for Real)")
    print(f"score with ONNX Runtime alone: dfdetect predict --runtime onnx --model {out} IMAGES...")
    return 0


def command_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dfdetect.serving.app import create_app

    predictor = load_scoring_model(args)
    app = create_app(
        predictor,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_files=args.max_files,
        max_video_bytes=int(args.max_video_mb * 2**20),
        video_frames=args.frames,
        crop_face=args.crop_face,
        face_detector=args.face_detector,
        face_margin=args.face_margin,
    )
    print(f"serving {predictor.model_label} ({predictor.runtime}) on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def parse_model_config(text: str) -> tuple[str, Path]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected MODEL=FILE.yaml, got {text!r}")
    name, path = text.split("=", 1)
    return name.strip(), Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfdetect", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("models", help="list the registered models with parameter counts")

    train = commands.add_parser("train", help="train a detector on a dataset folder")
    add_train_options(train, train=True)
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")

    evaluate = commands.add_parser("evaluate", help="evaluate a trained detector on a split")
    evaluate.add_argument(
        "--model",
        action="append",
        required=True,
        help="run folder, checkpoint file or shipped detector; NAME=PATH names it; repeat for a table of models",
    )
    evaluate.add_argument(
        "--data",
        action="append",
        required=True,
        help="dataset root, or a folder with Real and/or Fake; NAME=DIR names it; repeat for a table of datasets",
    )
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="resamples for 95%% intervals (0: none)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    evaluate.add_argument("--split", default="Test")
    evaluate.add_argument(
        "--threshold",
        help="Real when P(Real) >= this number, or the threshold of a policy stored with the model (eer, balanced, "
        "cost:2, fpr:0.01, ...; default: the model's own policy, else 0.5)",
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        help="metrics JSON path (default RUN/eval-<split>/metrics.json); with several models or datasets, a folder",
    )
    evaluate.add_argument("--per-image", type=Path, help="CSV of path, label, p_real, prediction")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--workers", type=int, default=-1)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--strict-data", action="store_true")
    add_face_options(evaluate, "cut each image to its largest face first, framed like the training crops")
    evaluate.add_argument(
        "--faces-file",
        type=Path,
        metavar="FILE",
        help="JSON file of the faces found in each image, read and extended: a later evaluation of the same images "
        "(any model, framing or margin; same --face-detector) finds none again",
    )

    experiment = commands.add_parser("experiment", help="train, test and compare several models; write a report")
    add_train_options(experiment)
    experiment.add_argument(
        "--models",
        default="own_cnn,densenet121,efficientnet_lite0",
        help="comma-separated model names, or LABEL=MODEL arms (e.g. dfdc=efficientnet_lite0,sbi=efficientnet_lite0)",
    )
    experiment.add_argument(
        "--model-config",
        action="append",
        type=parse_model_config,
        default=[],
        metavar="MODEL=FILE",
        help="a config file for one arm (its model name or LABEL), repeatable",
    )
    experiment.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a held-out evaluation set (Real/Fake folders; never trained on), repeatable: a cross-source table",
    )
    add_crop_flags(
        experiment,
        "cut every --eval image with a face to its largest face (default: only loosely framed ones, as evaluate)",
        "score --eval images as they are",
    )
    experiment.add_argument("--out", type=Path, required=True, help="experiment folder (rerun to continue)")

    tune = commands.add_parser("tune", help="hyperparameter search (random or TPE) with Optuna")
    add_train_options(tune)
    tune.add_argument("--trials", type=int, default=5, help="completed trials the study should hold")
    tune.add_argument("--search-space", type=Path, help="YAML search space (default: the study's Table 1)")
    tune.add_argument("--sampler", choices=("random", "tpe"), default="random")
    tune.add_argument("--storage", help="study database URL (default: sqlite in --out); postgresql://... to share")
    tune.add_argument("--study", default="dfdetect", help="study name inside the storage")
    tune.add_argument("--prune", action="store_true", help="stop hopeless trials early (median pruner)")
    tune.add_argument("--out", type=Path, required=True, help="folder for the study, trials and outputs")

    predict = commands.add_parser(
        "predict", help="score images and videos: files, folders (recursive) or globs; one row each"
    )
    add_scoring_options(predict)
    add_caution_options(predict)
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument(
        "--format", choices=("table", "csv", "json", "jsonl"), help="default: table on a terminal, csv otherwise"
    )
    predict.add_argument(
        "--out",
        type=Path,
        help="write the results to a file (csv and jsonl: as they are scored, every 256 images; a video counts as "
        "its --frames)",
    )
    predict.add_argument(
        "--resume",
        action="store_true",
        help="with --out FILE in csv or jsonl: score only the files FILE does not hold yet and add them to it "
        "(after a crash or Ctrl-C)",
    )
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--explain", type=Path, metavar="DIR", help="write Grad-CAM overlays to DIR")
    predict.add_argument("--min-face", type=int, default=32, help="--crop-face: smallest face scored, in pixels")
    predict.add_argument(
        "--per-face",
        type=Path,
        metavar="FILE",
        help="photos cut to their faces: every face's box, score, noise and caution (CSV)",
    )
    predict.add_argument("--frames", type=int, default=32, help="videos: frames read, evenly spaced")
    predict.add_argument(
        "--aggregate",
        choices=("mean", "max", "confident"),
        default="mean",
        help="videos: mean logit of the frames (default), the most fake frame, or the DFDC winner's rule",
    )
    predict.add_argument(
        "--per-frame", type=Path, metavar="FILE", help="videos: every frame's box, score and noise (CSV)"
    )
    add_face_options(predict, "score every face found in an image, the most fake one deciding")

    export = commands.add_parser("export", help="export a trained detector to ONNX")
    export.add_argument("--model", type=Path, required=True, help="run folder, checkpoint or shipped detector")
    export.add_argument("--format", choices=("onnx",), default="onnx")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--opset", type=int, default=17)

    serve = commands.add_parser("serve", help="HTTP API and web page over a trained detector")
    add_scoring_options(serve)
    add_caution_options(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-upload-mb", type=float, default=10.0)
    serve.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    serve.add_argument("--max-files", type=int, default=16, help="uploads per request (more: 413)")
    serve.add_argument("--max-video-mb", type=float, default=100.0, help="largest video upload (0: images only)")
    serve.add_argument("--frames", type=int, default=32, help="frames read from each uploaded video")
    add_face_options(serve, "score every face found in an uploaded image, the most fake one deciding")

    calibrate = commands.add_parser(
        "calibrate", help="fit temperature scaling and a threshold policy on a held-out split; store them"
    )
    calibrate.add_argument("--model", type=Path, required=True, help="run folder or checkpoint file")
    calibrate.add_argument("--data", type=Path, required=True, help="dataset root, or a folder with Real/Fake")
    calibrate.add_argument("--split", default="Validation", help="held-out split to fit on (never Test)")
    calibrate.add_argument(
        "--policy",
        default="eer",
        help="threshold policy to use: 0.5, eer, balanced, fpr:X (e.g. fpr:0.01) or cost:C (a real face called fake "
        "costs C times a fake called real, e.g. cost:2)",
    )
    calibrate.add_argument("--device", default="auto")
    calibrate.add_argument("--workers", type=int, default=-1)
    calibrate.add_argument(
        "--small-caution",
        type=int,
        metavar="PX",
        help="store this detector's own small-input limit: predict and serve flag scores of inputs (or cut faces) "
        "whose shorter side is under it (measure it with bench/small_inputs.py; without it an earlier calibration's "
        "stays, else they use dfdetect.quality.SMALL_CAUTION)",
    )

    ensemble = commands.add_parser(
        "ensemble", help="combine trained detectors (or one, with --tta hflip) into one checkpoint: the mean logit"
    )
    ensemble.add_argument(
        "--model",
        type=Path,
        action="append",
        required=True,
        help="run folder, checkpoint or shipped name; repeat. An ensemble adds all its members, SOURCE#N its member N "
        "(e.g. dfdc-lite0-ens#0)",
    )
    ensemble.add_argument(
        "--tta", choices=TTA_CHOICES, default="none", help="hflip: also score each image's mirror (twice the cost)"
    )
    ensemble.add_argument(
        "--average",
        action="store_true",
        help="average the networks' weights into one network (a model soup; for fine-tunes of one start) instead of "
        "their logits",
    )
    ensemble.add_argument(
        "--weights",
        help="comma-separated weight per network, in --model order, e.g. 0.8,0.2 (normalised to sum 1): of its logit, "
        "or with --average of its weights (default: equal)",
    )
    ensemble.add_argument("--out", type=Path, required=True, help="run folder to write (checkpoints/best.safetensors)")

    from dfdetect.quality import NOISE_CAUTION

    route = commands.add_parser(
        "route", help="pair a detector with a noise-robust one that scores the inputs noisier than a limit"
    )
    route.add_argument(
        "--model",
        type=Path,
        required=True,
        help="the detector for ordinary inputs (run folder, checkpoint or shipped name)",
    )
    route.add_argument("--noisy-model", type=Path, required=True, help="the detector for noisy inputs, e.g. dfdc-lite0")
    route.add_argument(
        "--noise-limit",
        type=float,
        default=NOISE_CAUTION,
        help=f"estimated noise (grey levels at --model's input size) above which --noisy-model scores "
        f"(default {NOISE_CAUTION:g}: where the default detector breaks, docs/results.md section 28)",
    )
    route.add_argument("--out", type=Path, required=True, help="run folder to write (checkpoints/best.safetensors)")

    robustness = commands.add_parser("robustness", help="score a labelled set under perturbations at several levels")
    add_scoring_options(robustness)
    robustness.add_argument("--data", type=Path, required=True, help="dataset root, or a folder with Real and/or Fake")
    robustness.add_argument("--split", default="Test")
    robustness.add_argument(
        "--perturbations",
        default="basic,deeperforensics",
        help="sets (basic, deeperforensics, all) and/or names (jpeg, downscale, blur, noise, df-cs, df-cc, df-bw, "
        "df-gnc, df-gb, df-jpeg, df-vc), comma-separated",
    )
    robustness.add_argument(
        "--levels",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="replace a chosen perturbation's levels (repeatable), e.g. --perturbations noise --levels noise=1,2,3",
    )
    robustness.add_argument("--seed", type=int, default=0, help="seed of the random perturbations")
    robustness.add_argument("--out", type=Path, default=Path("robustness"), help="folder for the table and plots")

    demo = commands.add_parser("demo", help="train and compare both models on generated synthetic data")
    demo.add_argument("--out", type=Path, default=Path("demo-run"))
    demo.add_argument("--epochs", type=int, default=6)
    return parser


COMMANDS = {
    "models": command_models,
    "train": command_train,
    "evaluate": command_evaluate,
    "experiment": command_experiment,
    "tune": command_tune,
    "predict": command_predict,
    "export": command_export,
    "serve": command_serve,
    "calibrate": command_calibrate,
    "ensemble": command_ensemble,
    "route": command_route,
    "robustness": command_robustness,
    "demo": command_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from dfdetect.errors import DfdetectError

    try:
        return COMMANDS[args.command](args)
    except DfdetectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
