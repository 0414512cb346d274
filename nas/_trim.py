"""Trimming an exported file to the code its architecture reaches, and checking the result.

Building the model once under a line tracer shows which `if` statements the builder never
enters and which functions it never calls; only those are left out. The trimmed file is then
run and compared with the reference network (state_dict keys, shapes and outputs).
"""

from __future__ import annotations

import ast
import sys

import torch

# Name under which generated code is compiled, so the tracer can tell its frames apart.
GENERATED_FILENAME = "<nas-export>"


def trim(source: str, input_shape: tuple[int, int, int], first_builder_line: str) -> str:
    """Leave out the `if` blocks and definitions the model never reaches while built and run.

    The builder runs from the line `first_builder_line` to `def build_model(`; only code
    between them is trimmed.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line == first_builder_line)
    end = next(i for i, line in enumerate(lines, 1) if line.startswith("def build_model("))
    executed = _executed_lines(source, input_shape)

    def ran(body: list[ast.stmt]) -> bool:
        return any(body[0].lineno <= line <= body[-1].end_lineno for line in executed)

    dropped: set[int] = set()

    def drop(node: ast.stmt) -> None:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while lines[first - 2].lstrip().startswith("#"):
            first -= 1  # the comment that introduces a block goes with it
        dropped.update(range(first, node.end_lineno + 1))

    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            block = getattr(node, field, None)
            if not isinstance(block, list) or not block:
                continue
            unreached = [
                statement
                for statement in block
                if isinstance(statement, ast.If)
                and not statement.orelse
                and start < statement.lineno < end
                and not ran(statement.body)
            ]
            if len(unreached) < len(block):  # a block must keep a statement
                for statement in unreached:
                    drop(statement)
    while True:
        used = {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.lineno not in dropped
        }
        unused = [
            node
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and start < node.lineno < end
            and node.lineno not in dropped
            and node.name not in used
            and not ran(node.body)
        ]
        if not unused:
            break
        for node in unused:
            drop(node)
    builder = [lines[number - 1] for number in range(start, end) if number not in dropped]
    tidy = _tidy_blank_lines(builder)
    return "\n".join(lines[: start - 1] + tidy + ["", ""] + lines[end - 1 :]) + "\n"


def _tidy_blank_lines(lines: list[str]) -> list[str]:
    """At most two blank lines before top-level code and one inside a block, none at its start
    (removing code leaves gaps); trailing blank lines go."""
    out: list[str] = []
    blanks = 0
    for line in lines:
        if not line.strip():
            blanks += 1
            continue
        if blanks and out:
            top_level = not line[0].isspace()
            after_opening = out[-1].rstrip().endswith(":") and not top_level
            count = 0 if after_opening else min(blanks, 2 if top_level else 1)
            out += [""] * count
        blanks = 0
        out.append(line)
    return out


def _executed_lines(source: str, input_shape: tuple[int, int, int]) -> set[int]:
    """Lines of `source` run while its build_model() builds a model and runs one batch."""
    namespace = _execute(source)
    executed: set[int] = set()

    def trace_lines(frame, event, _arg):
        if event == "line":
            executed.add(frame.f_lineno)
        return trace_lines

    def trace_calls(frame, _event, _arg):
        return trace_lines if frame.f_code.co_filename == GENERATED_FILENAME else None

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        model = namespace["build_model"]().eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_shape))
    finally:
        sys.settrace(previous)
    return executed


def _execute(source: str) -> dict:
    namespace: dict = {"__name__": "nas_exported_model"}
    exec(compile(source, GENERATED_FILENAME, "exec"), namespace)  # our own generated code
    return namespace


def check_same_network(source: str, reference: torch.nn.Module, input_shape) -> None:
    """Raise unless `source` builds `reference`'s network: same keys, shapes and outputs."""
    model = _execute(source)["build_model"]().eval()
    expected = {key: value.shape for key, value in reference.state_dict().items()}
    got = {key: value.shape for key, value in model.state_dict().items()}
    if got != expected:
        raise RuntimeError("the generated builder's state_dict differs from nas.build_model's")
    model.load_state_dict(reference.state_dict())
    inputs = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if not torch.equal(model(inputs), reference(inputs)):
            raise RuntimeError("the generated model's outputs differ from nas.build_model's")
