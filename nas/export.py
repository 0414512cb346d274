"""`python -m nas.export --study NAME (--trial N | --pick best|knee|smallest) [--out model.py]`.

Writes a searched architecture as one Python file that needs only torch: the search's own
builder code, the architecture's constants (ARCH, INPUT_SHAPE, MACS, PARAMS), a docstring that
records where it comes from, and a self-check (`python model.py`). Optionally trains the
architecture with the final recipe (`--train-epochs`, weights the file can load) and writes an
ONNX file (`--onnx`).

Picking a trial (only COMPLETE trials are candidates; `--min-acc` and `--max-mmacs` filter them
for every pick):

- best: the highest validation accuracy (ties: fewer MACs).
- smallest: the fewest MACs (ties: higher accuracy); with `--min-acc`, the cheapest that is
  accurate enough.
- knee: on the Pareto front of accuracy against MACs, accuracy and log10(MACs) are each scaled
  to [0, 1] between the front's cheapest and most accurate points; the knee is the point that
  lies farthest above the straight line joining those two extremes (the largest accuracy gain
  for its cost). A front of one or two points has no knee: its most accurate point is taken.

Nothing is written unless everything succeeded; bad input gets a one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas._arch import Arch
from nas._cli import (
    OneLineParser,
    add_device_option,
    add_seed_option,
    add_storage_option,
    add_study_data_options,
    add_study_option,
    fail,
    missing_extra,
)
from nas._data_choice import class_names_text, load_study_data
from nas.confirm import pick_accuracies
from nas.pareto import PICK_WORDS, PICKS, limits_text, pick_trial
from nas.record import TrialRecord, trial_accuracy
from nas.storage import load_study

EXIT_TRAINING_FAILED = 1


def generate_code(arch: Arch | str, **options) -> str:
    """`nas._codegen.generate_code` (see there for the options), imported on first use.

    The lazy import keeps torch out of the command line's start-up until a file is generated.
    """
    from nas._codegen import generate_code as generate

    return generate(arch, **options)


def code_for_trial(study: optuna.Study, trial_number: int) -> str:
    """The exported file of one complete trial (what the dashboard's download button serves).

    Args:
        study: the study, read from any storage (`nas.storage.load_study` opens one by name).
        trial_number: the trial to export.

    Raises:
        ValueError: for an unknown trial or one that did not complete; the message is one
            line for the user.
    """
    trial = completed_trial(study, trial_number)
    arch, input_shape, num_classes = trial_network(study, trial)
    return generate_code(
        arch,
        input_shape=input_shape,
        num_classes=num_classes,
        provenance=provenance_of(study, trial),
    )


def completed_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial `number` of `study`; ValueError unless it exists and completed."""
    trials = study.get_trials(deepcopy=False)
    found = [trial for trial in trials if trial.number == number]
    if not found:
        raise ValueError(
            f"study {study.study_name!r} has no trial {number} "
            f"(it has {len(trials)} trials, numbered from 0)"
        )
    trial = found[0]
    if trial.state != TrialState.COMPLETE:
        record = TrialRecord.from_trial(trial)
        reason = record.failure or record.constraint or ""
        if record.pruned_at_epoch is not None:
            reason = record.pruned_by or f"stopped after epoch {record.pruned_at_epoch}"
        raise ValueError(
            f"trial {number} of study {study.study_name!r} {_STATE_WORDS[trial.state]}"
            + (f" ({str(reason)[:200]})" if reason else "")
            + ": only complete trials can be exported"
        )
    return trial


_STATE_WORDS = {
    TrialState.PRUNED: "was stopped early (pruned)",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "is still running",
    TrialState.WAITING: "is waiting to run",
}


class UnreadableArchError(ValueError):
    """A trial stores no architecture, or one that does not parse (the storage is not ours to
    trust); the message is one line for the user."""

    def __init__(self, trial_number: int, reason: str):
        super().__init__(f"trial {trial_number}'s {reason}; pick another trial")
        self.reason = reason


def trial_arch(trial: FrozenTrial) -> Arch:
    """The architecture a trial stores; UnreadableArchError when it has none or bad text."""
    text = TrialRecord.from_trial(trial).arch
    if text is None:
        raise UnreadableArchError(
            trial.number, "record has no 'arch' attribute: not a nas.search trial"
        )
    try:
        return Arch.parse(text)
    except (ValueError, OverflowError) as error:
        reason = f"architecture cannot be read: {str(error)[:200]}"
        raise UnreadableArchError(trial.number, reason) from None


def trial_network(study: optuna.Study, trial: FrozenTrial) -> tuple[Arch, tuple, int]:
    """(architecture, input shape, classes) of a trial, checked; ValueError when unusable."""
    arch = trial_arch(trial)
    attrs = study.user_attrs
    shape, classes = attrs.get("input_shape"), attrs.get("num_classes")
    if shape is None or classes is None:
        from nas._cli import DATASET_SHAPES

        if attrs.get("dataset") not in DATASET_SHAPES:
            raise ValueError(
                f"study {study.study_name!r} records no input_shape / num_classes "
                "and no known dataset: not a nas.search study"
            )
        shape, classes = DATASET_SHAPES[attrs["dataset"]]
    valid_shape = isinstance(shape, (list, tuple)) and len(shape) == 3
    if not valid_shape or not all(_positive_int(size) for size in [*shape, classes]):
        raise ValueError(
            f"study {study.study_name!r} records input_shape={shape!r}, "
            f"num_classes={classes!r}: expected [C, H, W] and a positive int"
        )
    return arch, tuple(shape), classes


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def provenance_of(study: optuna.Study, trial: FrozenTrial, pick: str | None = None) -> dict:
    """What the exported docstring records about a trial (all values rendered safely)."""
    attrs, record = study.user_attrs, TrialRecord.from_trial(trial)
    return {
        "study": study.study_name,
        "trial": trial.number,
        "pick": pick,
        "landmark": record.landmark,
        "dataset": attrs.get("dataset_name") or attrs.get("dataset"),
        "classes": class_names_text(attrs.get("class_names")),
        "val_acc": trial_accuracy(trial),
        "budget": record.budget if record.budget is not None else attrs.get("budget"),
        "command": attrs.get("command"),
    }


# --- the command line ------------------------------------------------------------------------


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.export",
        script="nas-export",
        description="Write a searched architecture as one standalone PyTorch file.",
    )
    add_study_option(parser, required=True)
    add_storage_option(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="export this trial number")
    which.add_argument("--pick", choices=PICKS, help="pick a trial: best, knee or smallest")
    parser.add_argument("--min-acc", type=float, help="with --pick: validation accuracy floor")
    parser.add_argument("--max-mmacs", type=float, help="with --pick: cost ceiling, million MACs")
    parser.add_argument("--out", default="model.py", help="file to write (default model.py)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument(
        "--onnx",
        default=None,
        help="also write the model as this ONNX file (needs the onnx extra)",
    )
    parser.add_argument(
        "--train-epochs",
        type=int,
        default=None,
        help="train with the final recipe on the full training split; report test accuracy",
    )
    parser.add_argument("--weights", default=None, help="where trained weights go (OUT.pt)")
    add_study_data_options(parser, when="with --train-epochs: ")
    add_device_option(parser)
    add_seed_option(parser)
    return parser


class TrainingFailed(Exception):
    """Final training diverged: not bad input, but nothing to write either."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _run(args)
    except ValueError as error:  # every refusal of bad input: one line, exit 2
        return fail(str(error))
    except TrainingFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_TRAINING_FAILED


def _run(args: argparse.Namespace) -> int:
    outputs = _checked_outputs(args)
    study = load_study(args.storage, args.study)
    if args.trial is not None:
        trial, pick = completed_trial(study, args.trial), None
    else:
        judged = pick_accuracies(study)
        trial, pick = _readable_pick(study, args, judged), _pick_note(args, study, judged)
    arch, input_shape, num_classes = trial_network(study, trial)
    provenance = provenance_of(study, trial, pick)
    if args.trial is None:
        provenance["picked_on"] = judged[1] if judged else "the search's single proxy run"
        if judged:
            print(f"note: picked on {judged[1]} ({len(judged[0])} networks)", file=sys.stderr)
    files: dict[Path, bytes] = {}
    model, normalization = None, None
    if args.train_epochs is not None:
        model, test_acc, normalization = _train(arch, study, input_shape, num_classes, args)
        files[outputs["weights"]] = _state_dict_bytes(model)
        epochs = f"{args.train_epochs} epoch" + "s" * (args.train_epochs != 1)
        provenance["test_acc"] = (
            f"{test_acc:.4f} after {epochs} of the final recipe on the full training split "
            f"(seed {args.seed})"
        )
        provenance["weights"] = f"{outputs['weights'].name}, for build_model(weights=PATH)"
    code = generate_code(
        arch,
        input_shape=input_shape,
        num_classes=num_classes,
        provenance=provenance,
        normalization=normalization,
    )
    files[outputs["out"]] = code.encode()
    if "onnx" in outputs:
        files[outputs["onnx"]] = _onnx_bytes(arch, input_shape, num_classes, model)
    _write_all(files)
    from nas.cost import count_cost  # cached: generate_code counted the same network

    macs = count_cost(arch, input_shape, num_classes).macs
    recorded = TrialRecord.from_trial(trial).macs
    print(
        f"wrote {outputs['out']}: trial {trial.number} of study {study.study_name!r} "
        f"(val acc {trial.values[0]:.4f}, {macs / 1e6:.3f} M MACs)"
    )
    if recorded is not None and recorded != macs:
        print(
            f"note: the trial recorded {recorded:,} MACs; counted now: {macs:,}", file=sys.stderr
        )
    for key in ("weights", "onnx"):
        if outputs.get(key) in files:
            print(f"wrote {outputs[key]}")
    return 0


def _readable_pick(study: optuna.Study, args: argparse.Namespace, judged) -> FrozenTrial:
    """The trial --pick selects among those whose architecture can be read (judged by the
    accuracies of `nas.confirm.pick_accuracies`, where there are); each one passed over for an
    unreadable architecture gets a note, so one bad trial spoils no export."""
    unreadable: list[int] = []
    accuracies = judged[0] if judged else None
    while True:
        try:
            trial = pick_trial(
                study, args.pick, args.min_acc, args.max_mmacs, unreadable, accuracies
            )
        except ValueError as error:
            if not unreadable:
                raise
            raise ValueError(
                f"{error} whose architecture can be read ({len(unreadable)} cannot)"
            ) from None
        try:
            trial_arch(trial)
            return trial
        except UnreadableArchError as error:
            print(f"note: skipped trial {trial.number}: its {error.reason}", file=sys.stderr)
            unreadable.append(trial.number)


def _pick_note(args: argparse.Namespace, study: optuna.Study, judged) -> str:
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    what = PICK_WORDS[args.pick]
    limits = limits_text(args.min_acc, args.max_mmacs)
    among = f"of {complete} complete trials"
    if judged:
        among = f"of the {len(judged[0])} networks with {judged[1]}"
    among += f" with {' and '.join(limits)}" if limits else ""
    return f"{what} {among} (--pick {args.pick})"


def _checked_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The files to write, refused before any work if they cannot or should not be written."""
    if args.trial is not None and (args.min_acc is not None or args.max_mmacs is not None):
        raise ValueError("--min-acc and --max-mmacs only go with --pick")
    if args.min_acc is not None and not 0 <= args.min_acc <= 1:
        raise ValueError(f"--min-acc is a validation accuracy in 0..1, got {args.min_acc}")
    if args.max_mmacs is not None and not args.max_mmacs > 0:
        raise ValueError(f"--max-mmacs must be positive, got {args.max_mmacs}")
    if args.weights is not None and args.train_epochs is None:
        raise ValueError("--weights needs --train-epochs (there is nothing to save otherwise)")
    if args.train_epochs is not None and args.train_epochs < 1:
        raise ValueError(f"--train-epochs must be at least 1, got {args.train_epochs}")
    outputs = {"out": Path(args.out)}
    if args.train_epochs is not None:
        outputs["weights"] = Path(args.weights or Path(args.out).with_suffix(".pt"))
    if args.onnx is not None:
        _require_onnx()
        outputs["onnx"] = Path(args.onnx)
    if len({path.resolve() for path in outputs.values()}) < len(outputs):
        raise ValueError("--out, --weights and --onnx must name different files")
    for option, path in outputs.items():
        if not path.parent.is_dir():
            raise ValueError(f"folder {path.parent} of --{option} {path} does not exist")
        if path.is_dir():
            raise ValueError(f"--{option} {path} is a folder")
        if path.exists() and not args.force:
            raise ValueError(f"{path} exists: refusing to overwrite it (add --force)")
    return outputs


def _require_onnx() -> None:
    """Refuse --onnx before any work when the onnx package (the onnx extra) is missing: torch's
    exporter needs it, and says so only in a traceback after training."""
    try:
        import onnx  # noqa: F401  (imported only to see that it is there: it is slow to load)
    except ImportError:
        raise ValueError(missing_extra("--onnx", "onnx")) from None


def _train(arch: Arch, study: optuna.Study, input_shape, num_classes, args):
    """Train `arch` on the study's dataset with the final recipe: (model, test acc, mean/std)."""
    import torch

    from nas._report import EpochLines
    from nas.builder import build_model
    from nas.train import resolve_device, train_final

    device = resolve_device(args.device)
    data = load_study_data(
        study.study_name,
        study.user_attrs,
        device,
        dataset=args.dataset,
        data_dir=args.data_dir,
        input_shape=input_shape,
        num_classes=num_classes,
    )
    print(
        f"training for {args.train_epochs} epochs on the full {data.name} training split "
        f"({device})...",
        file=sys.stderr,
    )
    model = build_model(arch, data.in_channels, data.num_classes)
    start = time.perf_counter()
    test_acc, result = train_final(
        model,
        data,
        args.train_epochs,
        device=device,
        seed=args.seed,
        on_epoch=EpochLines(args.train_epochs),
    )
    if result.failure:
        raise TrainingFailed(f"final training failed: {result.failure}; nothing written")
    print(f"test accuracy {test_acc:.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    return model, test_acc, (data.mean, data.std)


def _state_dict_bytes(model) -> bytes:
    import torch

    buffer = io.BytesIO()
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def _onnx_bytes(arch: Arch, input_shape, num_classes: int, model=None) -> bytes:
    """The model (trained if given, else freshly initialized) as ONNX, batch size free."""
    import torch

    from nas.builder import build_model

    model = (model or build_model(arch, input_shape[0], num_classes)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        # The TorchScript-based exporter: the torch.export-based default needs onnxscript,
        # which this tool does not depend on, and this static graph needs nothing it adds.
        torch.onnx.export(
            model,
            (torch.zeros(1, *input_shape),),
            buffer,
            dynamo=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buffer.getvalue()


def _write_all(files: dict[Path, bytes]) -> None:
    """Write every file through a temporary sibling and a rename: none is ever half written."""
    staged: list[tuple[str, Path]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, data in files.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((temporary, path))
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for secrets; these are not
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _path in staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


if __name__ == "__main__":
    sys.exit(main())
