"""An architecture as one standalone Python file: the search's own builder code, its constants,
provenance and a self-check.

The builder is copied from `nas._channels`, `nas._plan` and `nas.blocks` (their source, not a
rewrite), so an exported network is the network the search trained. Then the copy is trimmed to
what the architecture uses and checked against `nas.build_model` (`nas._trim`) before it is
returned.

Values from the storage (study name, command, dataset...) reach the file only inside the module
docstring, escaped (see `_docstring_literal`); code holds only literals we render ourselves.

At about 450 lines this module is longer than most: the file's parts (imports, constants, the
copied builder, the escaped docstring) are assembled here and read best together.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import inspect
import json
import sys
import textwrap
import warnings

import torch

import nas
from nas import _channels, _plan, blocks
from nas._arch import Arch
from nas._decoupling import decoupling_degree
from nas._plan import stage_specs, stem_channels, stem_plan, stem_words
from nas._trim import check_same_network, trim
from nas.builder import build_model as reference_model
from nas.cost import count_cost

# In dependency order: each module uses only names defined above it.
BUILDER_MODULES = (_channels, _plan, blocks)
LINE_LENGTH = 99

# Provenance keys with a fixed label and place; other keys follow in the caller's order.
PROVENANCE_LABELS = {
    "study": "study",
    "trial": "trial",
    "pick": "picked as",
    "picked_on": "picked on",
    "landmark": "landmark",
    "dataset": "dataset",
    "val_acc": "validation accuracy",
    "budget": "proxy budget",
    "test_acc": "test accuracy",
    "weights": "weights",
    "command": "search command",
}


def generate_code(
    arch: Arch | str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    provenance: dict,
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> str:
    """The source of a standalone file that builds `arch` with torch alone.

    Args:
        arch: the architecture (or its string).
        input_shape: (channels, height, width) the network was searched for.
        num_classes: classes of the head.
        provenance: where the network comes from, shown in the file's docstring. Known keys:
            study, trial, pick, dataset, val_acc, budget, test_acc, weights, command, and
            version / date (default: this tool's version, today). Others are listed as given.
        normalization: per-channel (mean, std) in [0, 1] pixel units that trained weights
            expect; written as MEAN / STD constants when given.
    """
    arch = Arch.parse(arch) if isinstance(arch, str) else arch
    input_shape = _checked_shape(input_shape)
    num_classes = _positive_int(num_classes, "num_classes")
    with _one_thread():
        return _generate(arch, input_shape, num_classes, provenance, normalization)


@contextlib.contextmanager
def _one_thread():
    # The checks below run one or two images through the network: on a busy machine more
    # threads only add synchronization (measured 10-20x slower on two shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _generate(arch, input_shape, num_classes, provenance, normalization) -> str:
    cost = count_cost(arch, input_shape, num_classes)
    reference = reference_model(arch, input_shape[0], num_classes).eval()
    sizes = _stage_sizes(reference, input_shape)
    parts = {
        "docstring": _docstring(arch, input_shape, num_classes, cost, provenance, normalization),
        "constants": _constants(arch, input_shape, num_classes, cost, sizes, normalization),
    }
    full = _assemble(parts, _builder_definitions())
    try:
        code = trim(full, input_shape, BUILDER_HEADER.splitlines()[0])
        check_same_network(code, reference, input_shape)
    except Exception as error:  # a trimming bug must not cost the user a correct file
        warnings.warn(
            f"exporting the untrimmed builder: trimming failed ({error})",
            RuntimeWarning,
            stacklevel=3,
        )
        code = full
        check_same_network(code, reference, input_shape)
    return code


# --- the builder's source --------------------------------------------------------------------


def _builder_definitions() -> tuple[list[ast.stmt], list[str]]:
    """The builder modules' imports (minus our own) and top-level definitions, as source."""
    imports: list[ast.stmt] = []
    definitions: list[str] = []
    for module in BUILDER_MODULES:
        source = inspect.getsource(module)
        lines = source.splitlines()
        for node in ast.parse(source).body:
            if _is_docstring(node):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if not _is_own_import(node):
                    imports.append(node)
                continue
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno] + [decorator.lineno for decorator in decorators])
            while start > 1 and lines[start - 2].lstrip().startswith("#"):
                start -= 1  # a comment right above a definition belongs to it
            definitions.append("\n".join(lines[start - 1 : node.end_lineno]))
    return imports, definitions


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_own_import(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__" or (node.module or "").split(".")[0] == "nas"
    return any(alias.name.split(".")[0] == "nas" for alias in node.names)


def _import_block(imports: list[ast.stmt], code: str) -> str:
    """Import lines for the names `code` uses, grouped and sorted as isort does."""
    used = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    plain: dict[bool, set[str]] = {True: set(), False: set()}  # stdlib? -> modules
    froms: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    for node in [*ast.parse("import sys").body, *imports]:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound not in used:
                continue
            name = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            if isinstance(node, ast.Import):
                plain[_is_stdlib(alias.name)].add(name)
            else:
                froms[_is_stdlib(node.module)].setdefault(node.module, set()).add(name)
    sections = []
    for stdlib in (True, False):
        lines = [f"import {module}" for module in sorted(plain[stdlib])]
        for module in sorted(froms[stdlib]):
            names = sorted(froms[stdlib][module], key=_isort_name_key)
            lines.append(f"from {module} import {', '.join(names)}")
        if lines:
            sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def _isort_name_key(name: str) -> tuple[int, str]:
    # isort's order-by-type: CONSTANTS, then Classes, then functions and modules.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


# --- assembling the file ---------------------------------------------------------------------

BUILDER_HEADER = """\
# The builder below is nas-spectrum's own code (nas/_channels.py, nas/_plan.py and
# nas/blocks.py), so this network is the one the search built. Branches this architecture
# never takes are left out; the docstrings still describe the general case.
"""

BUILDER_FOOTER = '''\
def build_model(
    num_classes: int = NUM_CLASSES,
    in_channels: int = INPUT_SHAPE[0],
    weights: str | None = None,
) -> Network:
    """The network of ARCH, optionally with weights saved by `nas.export --train-epochs`.

    Args:
        num_classes: classes of the linear head.
        in_channels: image channels (the stem adapts; the rest of the network does not change).
        weights: path of a state_dict to load (for the default num_classes and in_channels).
    """
    model = Network(in_channels, num_classes, STEM_CHS, STAGES, STEM_STRIDE)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


def _self_check(weights: str | None = None) -> None:
    """Build the model, compare its size with PARAMS, run one batch of INPUT_SHAPE through it."""
    model = build_model(weights=weights).eval()
    params = sum(parameter.numel() for parameter in model.parameters())
    if params != PARAMS:
        raise SystemExit(f"error: the model has {params:,} parameters, PARAMS says {PARAMS:,}")
    with torch.no_grad():
        logits = model(torch.randn(2, *INPUT_SHAPE))
    if logits.shape != (2, NUM_CLASSES) or not torch.isfinite(logits).all():
        raise SystemExit(f"error: a batch of {INPUT_SHAPE} images gave {tuple(logits.shape)}")
    print(
        f"ok: {params:,} params, {MACS / 1e6:.3f} M MACs, "
        f"{(2, *INPUT_SHAPE)} -> {tuple(logits.shape)}: {ARCH}"
    )


if __name__ == "__main__":
    # python model.py [WEIGHTS]: the self-check, with a weights file if one is given.
    _self_check(sys.argv[1] if len(sys.argv) > 1 else None)
'''


def _assemble(parts: dict[str, str], builder: tuple[list[ast.stmt], list[str]]) -> str:
    imports, definitions = builder
    body = "\n\n\n".join(
        [parts["constants"], BUILDER_HEADER + "\n\n" + definitions[0], *definitions[1:]]
    )
    body += "\n\n\n" + BUILDER_FOOTER
    header = parts["docstring"] + "\n\nfrom __future__ import annotations\n\n"
    return header + _import_block(imports, body) + "\n\n" + body


def _constants(
    arch: Arch,
    input_shape: tuple[int, int, int],
    num_classes: int,
    cost,
    sizes: list[tuple[int, int, int]],
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None,
) -> str:
    lines = [
        f"ARCH = {_arch_literal(arch)}",
        f"INPUT_SHAPE = {_literal(input_shape)}  # channels, height, width",
        f"NUM_CLASSES = {num_classes}",
        "# Multiply-accumulates of one image's forward pass (FLOPs = 2 x MACs) and parameters,",
        "# for INPUT_SHAPE and NUM_CLASSES; counted by ptflops' aten backend.",
        f"MACS = {cost.macs}",
        f"PARAMS = {cost.params}",
    ]
    if normalization is not None:
        mean, std = normalization
        lines += [
            "# The trained weights expect images as (pixels / 255 - MEAN) / STD per channel,",
            "# with the mean and standard deviation of the training split.",
            f"MEAN = {_literal(tuple(round(float(value), 6) for value in mean))}",
            f"STD = {_literal(tuple(round(float(value), 6) for value in std))}",
        ]
    lines += [
        "",
        f"STEM_CHS = {_literal(stem_channels(arch))}",
        _stem_stride_line(arch, input_shape, sizes[0]),
        _stages_literal(arch, sizes),
    ]
    return "\n".join(lines)


def _stem_stride_line(arch: Arch, input_shape: tuple[int, int, int], after: tuple) -> str:
    """STEM_STRIDE with a comment saying what the stem does to INPUT_SHAPE."""
    what = stem_words(stem_plan(input_shape[0], stem_channels(arch), arch.stem_stride))
    sizes = f"{input_shape[1]}x{input_shape[2]} -> {after[1]}x{after[2]}"
    return f"STEM_STRIDE = {arch.stem_stride}  # {what}: {sizes}"


def _arch_literal(arch: Arch) -> str:
    text = str(arch)
    if len(f"ARCH = {_literal(text)}") <= LINE_LENGTH:
        return _literal(text)
    # One stage per line, as an implicitly concatenated string in parentheses.
    tokens = text.split("-")
    pieces = [token + "-" for token in tokens[:-1]] + [tokens[-1]]
    return "(\n" + "".join(f"    {_literal(piece)}\n" for piece in pieces) + ")"


def _stages_literal(arch: Arch, sizes: list[tuple[int, int, int]]) -> str:
    lines = [
        "# One dict per stage: `depth` blocks of `width` output channels sharing one block design",
        "# (see branch_plan and block_plan for what each knob does).",
        "STAGES = [",
    ]
    for index, spec in enumerate(stage_specs(arch)):
        before, after = sizes[index], sizes[index + 1]
        lines.append(
            f"    # stage {index + 1}: {before[0]} -> {after[0]} channels, "
            f"{before[1]}x{before[2]} -> {after[1]}x{after[2]}"
        )
        lines.append("    {")
        lines += [f"        {_literal(key)}: {_literal(value)}," for key, value in spec.items()]
        lines.append("    },")
    lines.append("]")
    return "\n".join(lines)


def _stage_sizes(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> list:
    """(channels, height, width) after the stem and after each stage."""
    sizes = []

    def record(_module, _args, output):
        sizes.append(tuple(output.shape[1:]))

    modules = [model.stem, *model.stages]
    hooks = [module.register_forward_hook(record) for module in modules]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def _literal(value) -> str:
    """Python source for a plain value we render (ints, bools, floats, strings, tuples)."""
    if isinstance(value, bool) or value is None:
        text = repr(value)
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = json.dumps(value)  # double quotes, every non-ASCII character escaped
    elif isinstance(value, tuple):
        items = ", ".join(_literal(item) for item in value)
        text = f"({items},)" if len(value) == 1 else f"({items})"
    else:
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as a literal")
    if ast.literal_eval(text) != value:
        raise ValueError(f"literal {text} does not round-trip")
    return text


def _checked_shape(shape) -> tuple[int, int, int]:
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else ()
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {shape!r}")
    return tuple(_positive_int(size, "input_shape entries") for size in shape)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be positive integers, got {value!r}")
    return value


# --- the docstring ---------------------------------------------------------------------------


def _docstring(arch, input_shape, num_classes, cost, provenance, normalization) -> str:
    provenance = dict(provenance)
    version = provenance.pop("version", nas.__version__)
    date = provenance.pop("date", datetime.date.today().isoformat())
    shape = "x".join(str(size) for size in input_shape)
    computed = {
        "input": f"{shape} images, {num_classes} classes",
        "MACs": f"{cost.macs:,} multiply-accumulates per image (FLOPs = 2 x MACs)",
        "params": f"{cost.params:,}",
        "decoupling": f"{decoupling_degree(arch):.3f} (0 normal conv .. 1 depthwise separable)",
        "exported": f"{_shown(date)} by nas-spectrum {_shown(version)} (python -m nas.export)",
    }
    order = ["study", "trial", "pick", "picked_on", "landmark", "dataset", "input", "val_acc"]
    order += ["budget", "MACs", "params", "decoupling", "test_acc", "weights", "command"]
    order += [key for key in provenance if key not in order and key not in computed]
    order.append("exported")
    lines = [
        "A network from the spectrum normal conv -> Inception -> Xception, as plain PyTorch.",
        "",
        "Needs only torch. `build_model()` builds it (ARCH, STAGES say what it is); running this",
        "file checks that it builds, has PARAMS parameters and runs on INPUT_SHAPE.",
        "",
        "Provenance:",
    ]
    for key in order:
        if key in computed:
            text = computed[key]
        elif provenance.get(key) is not None:
            text = _format_value(provenance[key])
        else:
            continue
        label = PROVENANCE_LABELS.get(key, key) if isinstance(key, str) else key
        lines += _wrapped(f"{_shown(label)}: ", text)
    if normalization is not None:
        lines += [
            "",
            "The trained weights expect normalized images: (pixels / 255 - MEAN) / STD.",
        ]
    return _docstring_literal("\n".join(lines))


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return _shown(value)
    return _shown(repr(value))


def _shown(value) -> str:
    """A value as docstring text: as it is when plain, else its repr (quotes, escapes)."""
    text = str(value)
    plain = text.isprintable() and text == text.strip() and not set(text) & {"\\", '"'}
    return text if plain and text else repr(text)


def _wrapped(label: str, text: str) -> list[str]:
    """One provenance line, wrapped to the line length once escaped (4-space indent)."""
    width = LINE_LENGTH - 4
    lines = textwrap.wrap(
        label + text,
        width=width - 4,
        initial_indent="    ",
        subsequent_indent="        ",
        break_on_hyphens=False,
    )
    fitted = []
    for line in lines:
        # Escaping can lengthen a line (a backslash or quote doubles): split it further.
        while len(_escape(line)) > width:
            cut = width
            while len(_escape(line[:cut])) > width:
                cut -= 1
            fitted.append(line[:cut])
            line = "        " + line[cut:]
        fitted.append(line)
    return fitted


def _escape(text: str) -> str:
    # Every backslash and double quote escaped: no character sequence can end the literal.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _docstring_literal(text: str) -> str:
    literal = f'"""{_escape(text)}\n"""'
    if ast.literal_eval(literal) != text + "\n":
        raise ValueError("the docstring does not round-trip")
    return literal
