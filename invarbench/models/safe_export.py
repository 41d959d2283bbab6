"""Loading a ``torch.export`` program (a ``.pt2`` file) without running anything its author wrote.

``torch.export.load`` is not safe on untrusted files by itself (its own documentation says
so): an archive may hold pickled tensors or objects (unpickled with ``weights_only=False``),
AOTInductor shared libraries (loaded as native code), guard code (compiled to Python),
symbolic shapes as strings (parsed by ``sympy.sympify``, i.e. ``eval``), and names and
metadata that end up in generated Python source. So before torch reads anything, this module
opens the archive with :mod:`zipfile` and checks it against an allow-list of what a plain
exported classifier contains:

- only the entries ``torch.export.save`` writes for one program: version markers, the program
  JSON, raw tensor payloads and their configs, and the sample inputs (which must load with
  ``torch.load(weights_only=True)``); no pickled payload, custom object, compiled code or
  extra file;
- in the program: operators only from ``aten``/``prims`` (minus file I/O) and a short list of
  symbolic-shape helpers; every symbolic expression parses to a whitelisted sympy call tree;
  every name and module path is a plain identifier path; no guard code, custom objects or
  named tuples; exactly one tensor input and one tensor output;
- what a benchmark needs of the program: it was exported in eval mode (no batch norm on batch
  statistics, no active dropout) and its batch dimension is dynamic and unbounded, so that it
  runs on batches of any size; after loading, its input must be of a floating dtype (exposed as
  :attr:`ExportedModule.input_dtype`, which the wrapper casts its float32 images to).

The archive torch then loads is a copy in which every node's free-text metadata (stack
traces, module stacks, annotations) is dropped, so none of it can reach generated code. While
torch loads it, ``pickle.load(s)`` and ``torch._C._pickle_load_obj`` are disabled and
``torch.load`` is forced to ``weights_only=True`` (defence in depth: the checks above already
make those paths unreachable).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import keyword
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock

import torch
from torch import nn

from invarbench.errors import ValidationError

# --- the archive ------------------------------------------------------------------------------

_VERSION_ENTRIES = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
_MODEL_JSON = "models/model.json"
_SAMPLE_INPUTS = "data/sample_inputs/model.pt"
_WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
_CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
_WEIGHTS_DIR = "data/weights/"
_CONSTANTS_DIR = "data/constants/"
_WEIGHT_FILE_RE = re.compile(r"^weight_[0-9]+$")
_CONSTANT_FILE_RE = re.compile(r"^tensor_[0-9]+$")
_MAX_JSON_BYTES = 256 * 1024**2
_MAX_SMALL_BYTES = 4096

# --- the program ------------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FQN_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_SYMBOL_RE = re.compile(r"^[a-z]+[0-9]+$")
_TENSOR_OP_RE = re.compile(r"^torch\.ops\.(aten|prims)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$")
_REFUSED_OP_WORDS = ("file", "print", "save", "load")  # aten.from_file, prims.print, ...
_OTHER_OPS = frozenset(
    [
        f"_operator.{n}"
        for n in (
            "getitem",
            "add",
            "sub",
            "mul",
            "truediv",
            "floordiv",
            "mod",
            "neg",
            "pos",
            "abs",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and_",
            "or_",
            "not_",
        )
    ]
    + [f"math.{n}" for n in ("ceil", "floor", "trunc", "sqrt")]
    + [
        f"torch.{n}"
        for n in ("sym_float", "sym_int", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sqrt", "sym_sum")
    ]
    + ["torch.ops.higher_order.wrap_with_set_grad_enabled", "torch.ops.higher_order.wrap_with_autocast"]
)
_INPUT_SPEC_KINDS = frozenset({"user_input", "parameter", "buffer", "tensor_constant"})
_TREESPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict"})

# Symbolic shapes are sympy ``srepr`` strings such as "Mul(Integer(2), Symbol('s77', positive=True,
# integer=True))". sympify evaluates them, so they must parse to calls of these names only.
_SYMPY_CALLS = frozenset(
    {
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Add",
        "Mul",
        "Max",
        "Min",
        "Mod",
        "Abs",
        "floor",
        "ceiling",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "And",
        "Or",
        "Not",
        "FloorDiv",
        "CeilDiv",
        "CleanDiv",
        "PythonMod",
        "ModularIndexing",
        "Where",
        "CeilToInt",
        "FloorToInt",
        "IntTrueDiv",
        "FloatTrueDiv",
        "TruncToInt",
        "TruncToFloat",
        "RoundToInt",
        "ToFloat",
        "Identity",
        "IsNonOverlappingAndDenseIndicator",
    }
)
_SYMPY_CONSTANTS = frozenset({"oo", "zoo", "nan", "true", "false", "True", "False", "int_oo"})
_SYMPY_KEYWORDS = frozenset(
    {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "nonzero", "evaluate"}
)
_SYMPY_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_SYMPY_UNARY = (ast.USub, ast.UAdd, ast.Not)
_MAX_EXPR_CHARS = 4000


class _Refused(Exception):
    """An archive that is not a plain exported classifier (message: what and where)."""


def _check_sympy_expr(expr: str) -> None:
    if len(expr) > _MAX_EXPR_CHARS:
        raise _Refused(f"a symbolic shape expression is {len(expr)} characters long")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise _Refused(f"the symbolic shape expression {expr[:80]!r} does not parse") from None
    for node in ast.walk(tree):
        if isinstance(
            node, (ast.Expression, ast.Load, ast.keyword, *_SYMPY_BINOPS, *_SYMPY_UNARY, ast.BinOp, ast.UnaryOp)
        ):
            if isinstance(node, ast.keyword) and node.arg not in _SYMPY_KEYWORDS:
                raise _Refused(f"the symbolic shape expression {expr[:80]!r} uses the keyword {node.arg!r}")
            continue
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_CALLS):
                raise _Refused(f"the symbolic shape expression {expr[:80]!r} calls something other than sympy")
            continue
        if isinstance(node, ast.Name):
            if node.id in _SYMPY_CALLS or node.id in _SYMPY_CONSTANTS or _SYMBOL_RE.match(node.id):
                continue
            raise _Refused(f"the symbolic shape expression {expr[:80]!r} names {node.id!r}")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or value is None or isinstance(value, float):
                continue
            if isinstance(value, int) and abs(value) < 2**63:
                continue
            if isinstance(value, str) and _SYMBOL_RE.match(value):
                continue
            raise _Refused(f"the symbolic shape expression {expr[:80]!r} holds the constant {value!r:.40}")
        raise _Refused(f"the symbolic shape expression {expr[:80]!r} contains a {type(node).__name__}")


def _check_operator(target: object) -> None:
    if not isinstance(target, str):
        raise _Refused(f"a node has a non-string target {target!r:.60}")
    match = _TENSOR_OP_RE.match(target)
    if match:
        op = match.group(2).lower()
        if any(word in op for word in _REFUSED_OP_WORDS):
            raise _Refused(f"the program calls {target}, an operator with side effects")
        return
    if target not in _OTHER_OPS:
        raise _Refused(
            f"the program calls {target!r:.80}; only aten/prims tensor operators and symbolic-shape "
            "helpers are allowed (no custom operators)"
        )


def _check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not _NAME_RE.match(value) or keyword.iskeyword(value):
        raise _Refused(f"{what} {value!r:.80} is not a plain identifier")


def _check_fqn(value: object, what: str, *, allow_empty: bool = False) -> None:
    if allow_empty and value == "":
        return
    if not isinstance(value, str) or not _FQN_RE.match(value):
        raise _Refused(f"{what} {value!r:.80} is not a plain dotted module path")


def _check_treespec(spec: object, what: str) -> Any:
    """Parse a pytree spec string; only tuples, lists, dicts and leaves."""
    if not isinstance(spec, str):
        raise _Refused(f"{what} is not a string")
    try:
        version, tree = json.loads(spec)
    except (ValueError, TypeError):
        raise _Refused(f"{what} is not a valid pytree spec") from None

    def walk(node: object) -> None:
        if not isinstance(node, dict) or node.get("type") not in _TREESPEC_TYPES:
            raise _Refused(
                f"{what} holds the type {node.get('type') if isinstance(node, dict) else node!r:.60}; "
                "only tuples, lists, dicts and tensors are allowed"
            )
        for child in node.get("children_spec") or []:
            walk(child)

    walk(tree)
    return tree


def _is_leaf(node: dict) -> bool:
    return node.get("type") is None and not node.get("children_spec")


def _check_signature(program: dict) -> None:
    gm = program.get("graph_module")
    if not isinstance(gm, dict):
        raise _Refused("the program has no graph module")
    sig = gm.get("signature") or {}
    inputs = sig.get("input_specs") or []
    outputs = sig.get("output_specs") or []
    kinds = [next(iter(spec)) if isinstance(spec, dict) and len(spec) == 1 else None for spec in inputs]
    for kind in kinds:
        if kind not in _INPUT_SPEC_KINDS:
            raise _Refused(
                f"the program has an input of kind {kind!r}; only tensors, parameters, buffers "
                "and tensor constants are allowed"
            )
    user_inputs = [spec["user_input"] for spec, kind in zip(inputs, kinds) if kind == "user_input"]
    if len(user_inputs) != 1 or "as_tensor" not in (user_inputs[0].get("arg") or {}):
        raise _Refused(f"the program takes {len(user_inputs)} inputs; a classifier takes exactly one image tensor")
    if (
        len(outputs) != 1
        or not isinstance(outputs[0], dict)
        or set(outputs[0]) != {"user_output"}
        or "as_tensor" not in (outputs[0]["user_output"].get("arg") or {})
    ):
        raise _Refused(
            "the program must return exactly one tensor of logits and mutate nothing "
            "(export the model in eval mode: 'invarbench pack' does)"
        )
    guards = program.get("guards_code")
    if guards:
        listed = guards if isinstance(guards, list) else []
        batch_guards = [g for g in listed if isinstance(g, str) and ".size()[0]" in g]
        raise _Refused(
            "the program carries guard code, which would be compiled and run"
            + (
                f"; its guards restrict the batch size (such as {batch_guards[0][:80]!r}), but invarbench runs batches "
                f"of any size: keep the forward from depending on the batch size and {_DYNAMIC_FIX}"
                if batch_guards
                else ""
            )
        )
    if gm.get("treespec_namedtuple_fields"):
        raise _Refused("the program uses named tuples, which would be created from names in the file")
    graph = gm.get("graph") or {}
    if graph.get("custom_obj_values"):
        raise _Refused("the program holds custom objects, which would be unpickled")
    calls = gm.get("module_call_graph") or []
    roots = [entry for entry in calls if isinstance(entry, dict) and entry.get("fqn") == ""]
    if len(roots) != 1 or not isinstance(roots[0].get("signature"), dict):
        raise _Refused("the program has no root module signature")
    root = roots[0]["signature"]
    in_spec = _check_treespec(root.get("in_spec"), "the input spec")
    out_spec = _check_treespec(root.get("out_spec"), "the output spec")
    args = in_spec.get("children_spec") or []
    if not (
        in_spec.get("type") == "builtins.tuple"
        and len(args) == 2
        and args[0].get("type") == "builtins.tuple"
        and len(args[0].get("children_spec") or []) == 1
        and _is_leaf(args[0]["children_spec"][0])
        and not args[1].get("children_spec")
    ):
        raise _Refused("the program's forward must take exactly one positional tensor (the images)")
    if not _is_leaf(out_spec):
        raise _Refused("the program's forward must return exactly one tensor (the logits)")
    for entry in calls:
        if isinstance(entry, dict):
            _check_fqn(entry.get("fqn"), "the module path", allow_empty=True)
            for arg_name in (entry.get("signature") or {}).get("forward_arg_names") or []:
                _check_name(arg_name, "the argument name")


# --- what a benchmark needs of the program ----------------------------------------------------

_EVAL_FIX = "call model.eval() before torch.export.export ('invarbench pack' does)"
_DYNAMIC_FIX = (
    "re-export it with a dynamic batch dimension: torch.export.export(model, (x,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},))"
)
# Older torch versions write the end of an unbounded range as a huge integer rather than null.
_UNBOUNDED = 2**31 - 1
_BATCH_SYMBOL_RE = re.compile(r"^Symbol\('([a-z]+[0-9]+)'(?:, [a-z]+=(?:True|False))*\)$|^([a-z]+[0-9]+)$")


def _node_args(node: dict) -> dict[str, object]:
    """A serialised node's arguments by name (malformed entries are skipped: other checks refuse them)."""
    args: dict[str, object] = {}
    inputs = node.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("arg"), dict):
            args[item["name"]] = item["arg"]
    return args


def _is_true(arg: object) -> bool:
    return isinstance(arg, dict) and arg.get("as_bool") is True


def _training_behaviour(target: str, args: dict[str, object]) -> str | None:
    """What a call of ``target`` with ``args`` does only in training mode, or None.

    torch.export records ``module.training`` as a constant argument: ``aten.batch_norm(...,
    training=True, ...)`` (or ``_native_batch_norm_legit_functional`` once decomposed),
    ``aten.dropout(..., train=True)`` (``native_dropout``, or ``bernoulli`` masks once decomposed),
    ``aten.rrelu(..., training=True)``.
    """
    match = _TENSOR_OP_RE.match(target)
    if not match:
        return None
    op = match.group(2)
    training = _is_true(args.get("training")) or _is_true(args.get("train"))
    if "batch_norm" in op:
        # Only with running statistics: without them (instance norm, BatchNorm with
        # track_running_stats=False) batch statistics are the layer's design in eval mode too.
        running = args.get("running_mean")
        if (training and isinstance(running, dict) and "as_tensor" in running) or "with_update" in op:
            return "batch norm uses the statistics of each batch instead of its running statistics"
        return None
    if "dropout" in op:
        p = args.get("p")
        if isinstance(p, dict) and p.get("as_float") == 0:
            return None  # dropout with p=0 is the identity in either mode
        if training or op == "_fused_dropout":
            return "dropout is active"
        return None
    if op.startswith("bernoulli"):
        return "dropout draws random masks"
    if op.startswith("rrelu") and training:
        return "RReLU draws random slopes"
    return None


def _iter_nodes(value: object) -> Iterator[dict]:
    """Every serialised node in the program, those of nested graphs (higher-order operators) included."""
    if isinstance(value, dict):
        if "target" in value and "inputs" in value and "outputs" in value:
            yield value
        for child in value.values():
            yield from _iter_nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _iter_nodes(child)


def _check_eval_mode(program: dict) -> None:
    """Refuse a program exported while its module was in training mode (before anything else about it:
    a decomposed one also mutates its buffers, and this is the reason to report)."""
    for node in _iter_nodes(program.get("graph_module")):
        target = node["target"]
        if not isinstance(target, str):
            continue  # _check_operator refuses it
        behaviour = _training_behaviour(target, _node_args(node))
        if behaviour:
            raise _Refused(f"it was exported in training mode: {behaviour} ({target:.80}); {_EVAL_FIX}")


def _check_batch_dimension(program: dict) -> None:
    """The input's first dimension must be dynamic and unbounded: invarbench runs batches of any size.
    Called after :func:`_check_signature`, which guarantees one tensor user input."""
    gm = program["graph_module"]
    spec = next(s["user_input"] for s in gm["signature"]["input_specs"] if "user_input" in s)
    tensor = spec.get("arg", {}).get("as_tensor") if isinstance(spec.get("arg"), dict) else None
    name = tensor.get("name") if isinstance(tensor, dict) else None
    graph = gm.get("graph")
    values = graph.get("tensor_values") if isinstance(graph, dict) else None
    meta = values.get(name) if isinstance(values, dict) and isinstance(name, str) else None
    sizes = meta.get("sizes") if isinstance(meta, dict) else None
    if not isinstance(sizes, list) or not sizes or not isinstance(sizes[0], dict):
        return  # torch refuses a program without its input's metadata when it loads it
    first = sizes[0]
    fixed = first.get("as_int")
    if isinstance(fixed, int) and not isinstance(fixed, bool):
        raise _Refused(
            f"it was exported for a fixed batch size of {fixed} (its input's first dimension is not dynamic), "
            f"but invarbench runs batches of any size; {_DYNAMIC_FIX}"
        )
    expr = first["as_expr"].get("expr_str") if isinstance(first.get("as_expr"), dict) else None
    match = _BATCH_SYMBOL_RE.match(expr) if isinstance(expr, str) else None
    ranges = program.get("range_constraints")
    bounds = ranges.get(match.group(1) or match.group(2)) if match and isinstance(ranges, dict) else None
    if not isinstance(bounds, dict):
        return  # an expression of a symbol (e.g. even sizes only): the wrapper's probes report it
    low, high = bounds.get("min_val"), bounds.get("max_val")
    low = low if isinstance(low, int) and not isinstance(low, bool) else 0
    high = high if isinstance(high, int) and not isinstance(high, bool) and high < _UNBOUNDED else None
    if high is not None or low > 2:  # torch itself raises a lower bound of 0 or 1 to 2 and still runs 1
        span = f"from {max(low, 1)} to {high}" if high is not None else f"of at least {low}"
        raise _Refused(
            f"its batch dimension only takes sizes {span}, but invarbench runs batches of any size; "
            f"{_DYNAMIC_FIX} without min or max"
        )


_NAME_KEYS = frozenset({"name", "as_name"})
_FQN_KEYS = frozenset({"parameter_name", "buffer_name", "tensor_constant_name"})
_NAMED_MAPS = frozenset({"tensor_values", "sym_int_values", "sym_bool_values", "sym_float_values"})
_REFUSED_KEYS = {
    "as_custom_obj": "a custom object argument, which would be unpickled",
    "class_fqn": "a custom class, which would be imported",
    "custom_obj_values": None,  # checked for emptiness in _check_signature
}


def _walk_program(value: object, key: str | None = None) -> object:
    """Check every string the deserialiser interprets; return a copy without node metadata."""
    if isinstance(value, dict):
        if "target" in value and "inputs" in value and "outputs" in value:
            _check_operator(value["target"])
        out: dict[str, object] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused(f"the program holds a non-string key {k!r:.40}")
            if k in _REFUSED_KEYS and _REFUSED_KEYS[k] is not None:
                raise _Refused(f"the program holds {_REFUSED_KEYS[k]}")
            if k == "metadata" and isinstance(v, dict):
                out[k] = {}  # stack traces, module stacks, annotations: free text, dropped
                continue
            if k in _NAME_KEYS:
                _check_name(v, "the name")
            elif k in _FQN_KEYS:
                _check_fqn(v, "the parameter path")
            elif k == "expr_str":
                if not isinstance(v, str):
                    raise _Refused("a symbolic shape expression is not a string")
                _check_sympy_expr(v)
            elif k == "as_operator":
                _check_operator(v)
            elif k == "range_constraints" and isinstance(v, dict):
                for symbol in v:
                    if not _SYMBOL_RE.match(symbol):
                        raise _Refused(f"the range constraint names {symbol!r:.40}, not a shape symbol")
            elif k in _NAMED_MAPS and isinstance(v, dict):
                for name in v:
                    _check_name(name, "the value name")
            out[k] = _walk_program(v, k)
        return out
    if isinstance(value, list):
        return [_walk_program(v, key) for v in value]
    return value


def _check_payload_config(raw: bytes, what: str, file_re: re.Pattern[str], directory: str) -> dict[str, dict]:
    try:
        config = json.loads(raw)["config"]
    except (ValueError, KeyError, TypeError):
        raise _Refused(f"{what} is not valid JSON of the expected form") from None
    if not isinstance(config, dict):
        raise _Refused(f"{what} is not a mapping")
    for fqn, meta in config.items():
        _check_fqn(fqn, "the tensor path")
        if not isinstance(meta, dict):
            raise _Refused(f"{what}: the entry for {fqn} is not a mapping")
        path_name = meta.get("path_name")
        if meta.get("use_pickle"):
            raise _Refused(f"the tensor {fqn} is stored as a pickle, which invarbench never unpickles")
        if not isinstance(path_name, str) or not file_re.match(path_name):
            raise _Refused(
                f"the payload {path_name!r:.60} of {fqn} is not a plain tensor (custom and opaque objects "
                "would be unpickled)"
            )
        if not isinstance(meta.get("tensor_meta"), dict):
            raise _Refused(f"{what}: the tensor {fqn} has no tensor metadata")
    return {directory + meta["path_name"]: meta for meta in config.values()}


def _numel(meta: dict) -> int | None:
    sizes = meta["tensor_meta"].get("sizes") or []
    total = 1
    for size in sizes:
        if not (isinstance(size, dict) and isinstance(size.get("as_int"), int)):
            return None
        total *= size["as_int"]
    return total


def _check_sample_inputs(raw: bytes) -> None:
    if not raw:
        return
    try:
        torch.load(io.BytesIO(raw), weights_only=True)
    except Exception:  # noqa: BLE001 - whatever the reason, torch would retry with weights_only=False
        raise _Refused("its sample inputs are not plain tensors (they would be unpickled)") from None


def _entry_names(archive: zipfile.ZipFile, size_limit: int) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    infos = archive.infolist()
    if not infos:
        raise _Refused("the archive is empty")
    roots = {info.filename.split("/", 1)[0] for info in infos}
    if len(roots) != 1:
        raise _Refused("the archive does not have one top-level folder")
    root = roots.pop()
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        rest = info.filename[len(root) + 1 :]
        parts = PurePosixPath(rest).parts
        if not rest or info.is_dir() or "\\" in info.filename or ".." in parts or rest.startswith("/"):
            raise _Refused(f"the archive entry {info.filename!r:.80} is not a plain file path")
        if rest in entries:
            raise _Refused(f"the archive holds {rest!r:.80} twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refused(f"the archive entry {rest!r:.80} uses an unsupported compression")
        total += info.file_size
        entries[rest] = info
    if total > size_limit:
        raise _Refused(f"the archive unpacks to {total:,} bytes, over the {size_limit:,}-byte limit")
    return root, entries


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    if info.file_size > limit:
        raise _Refused(f"{what} is {info.file_size:,} bytes, over the {limit:,}-byte limit")
    return archive.read(info)


def _describe_unexpected(name: str) -> str:
    if name.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
        return f"compiled code ({name}), which invarbench never loads"
    if name.endswith((".pt", ".pkl")):
        return f"a pickled file ({name}), which invarbench never unpickles"
    if name.startswith("extra/"):
        return f"an extra file ({name}); invarbench accepts only the program itself"
    if name.startswith("models/"):
        return f"a second program ({name}); invarbench accepts exactly one, named 'model'"
    return f"an unexpected entry ({name})"


def sanitise_archive(path: Path, out: Path, size_limit: int) -> str:
    """Check ``path`` against the allow-list and write the copy torch may load to ``out``.

    Returns the torch version that saved the program. Raises :class:`_Refused`.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise _Refused("it is not a zip archive; a .pt2 file is written by torch.export.save") from None
    with archive:
        root, entries = _entry_names(archive, size_limit)
        if "data.pkl" in entries:
            raise _Refused("it is a torch.save checkpoint (a pickle), not a torch.export program")
        for name in _VERSION_ENTRIES:
            if name not in entries:
                raise _Refused(f"it lacks the entry {name}: it was not written by torch.export.save of torch >= 2.6")
        small = {name: _read(archive, entries[name], _MAX_SMALL_BYTES, name) for name in _VERSION_ENTRIES}
        if small["archive_format"] != b"pt2":
            raise _Refused("its archive_format is not 'pt2'")
        for name in (_MODEL_JSON, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG, _SAMPLE_INPUTS):
            if name not in entries:
                raise _Refused(f"it lacks the entry {name}")
        weights = _check_payload_config(
            _read(archive, entries[_WEIGHTS_CONFIG], _MAX_JSON_BYTES, "the weights config"),
            "the weights config",
            _WEIGHT_FILE_RE,
            _WEIGHTS_DIR,
        )
        constants = _check_payload_config(
            _read(archive, entries[_CONSTANTS_CONFIG], _MAX_JSON_BYTES, "the constants config"),
            "the constants config",
            _CONSTANT_FILE_RE,
            _CONSTANTS_DIR,
        )
        payloads = {**weights, **constants}
        known = {*_VERSION_ENTRIES, _MODEL_JSON, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG, _SAMPLE_INPUTS, *payloads}
        for name in entries:
            if name not in known:
                raise _Refused(f"it contains {_describe_unexpected(name)}")
        for name, meta in payloads.items():
            if name not in entries:
                raise _Refused(f"it lacks the tensor payload {name}")
            if entries[name].file_size == 0 and _numel(meta) != 0:
                raise _Refused(f"the tensor payload {name} is empty but declares a non-empty shape")
        _check_sample_inputs(_read(archive, entries[_SAMPLE_INPUTS], _MAX_JSON_BYTES, "the sample inputs"))
        try:
            program = json.loads(_read(archive, entries[_MODEL_JSON], _MAX_JSON_BYTES, "the program"))
        except ValueError:
            raise _Refused("its program (models/model.json) is not valid JSON") from None
        if not isinstance(program, dict):
            raise _Refused("its program is not a JSON object")
        try:
            _check_eval_mode(program)
            _check_signature(program)
            _check_batch_dimension(program)
            clean = _walk_program(program)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError) as exc:
            # The checks read the JSON as torch writes it; any other shape is refused, not reported as a bug.
            raise _Refused(
                f"its program (models/model.json) is not of the form torch.export.save writes "
                f"({type(exc).__name__} while checking it)"
            ) from None
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
            for name, info in entries.items():
                dest = f"{root}/{name}"
                if name == _MODEL_JSON:
                    target.writestr(dest, json.dumps(clean))
                else:
                    with archive.open(info) as src, target.open(dest, "w", force_zip64=True) as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    version = program.get("torch_version")
    return version if isinstance(version, str) else "unknown"


class _UnpicklingRefused(Exception):
    pass


@contextlib.contextmanager
def _no_unpickling() -> Iterator[None]:
    """While torch loads the archive: no pickle, and torch.load only with weights_only=True."""
    real_load = torch.load

    def load_weights_only(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    def refuse(*args: Any, **kwargs: Any) -> Any:  # noqa: ARG001 - stands in for any unpickling call
        raise _UnpicklingRefused("unpickling is disabled while loading a submitted program")

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch, "load", load_weights_only))
        stack.enter_context(mock.patch.object(pickle, "loads", refuse))
        stack.enter_context(mock.patch.object(pickle, "load", refuse))
        if hasattr(torch._C, "_pickle_load_obj"):
            stack.enter_context(mock.patch.object(torch._C, "_pickle_load_obj", refuse))
        yield


class ExportedModule(nn.Module):
    """An exported program as a module. Its graph was captured in eval mode and cannot change,
    so ``train()``/``eval()`` only set this module's flag (torch refuses them on the graph).

    ``input_dtype`` is the floating dtype of the program's input (that of the example input it
    was exported with, e.g. ``torch.bfloat16`` for a half-precision model): callers cast their
    images to it (:class:`~invarbench.models.wrapper.ModelWrapper` does).
    """

    def __init__(self, graph_module: nn.Module, torch_version: str, input_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.program = graph_module
        self.saved_with = torch_version
        self.input_dtype = input_dtype

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _user_input_dtype(program: torch.export.ExportedProgram) -> torch.dtype | None:
    """The dtype of the program's one user input, from its placeholder's tensor metadata."""
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            dtype = getattr(node.meta.get("val"), "dtype", None)
            return dtype if isinstance(dtype, torch.dtype) else None
    return None


def load_exported_module(path: Path, where: str, size_limit: int) -> ExportedModule:
    """Check, sanitise and load the ``.pt2`` program at ``path`` (already checksummed)."""
    with tempfile.TemporaryDirectory(prefix="invarbench-pt2-") as tmp:
        clean = Path(tmp) / "model.pt2"
        try:
            saved_with = sanitise_archive(path, clean, size_limit)
        except _Refused as exc:
            raise ValidationError(
                f"{where}: {path.name} was refused as a torch.export program: {exc}. Nothing was loaded "
                "or run. Re-create it with 'invarbench pack' (see docs/model-cards.md)."
            ) from None
        try:
            with _no_unpickling():
                program = torch.export.load(str(clean))
                graph_module = program.module()
                input_dtype = _user_input_dtype(program)
        except _UnpicklingRefused:
            raise ValidationError(f"{where}: {path.name} asks to unpickle data, which invarbench refuses") from None
        except Exception as exc:  # noqa: BLE001 - any failure to read the archive is the file's fault
            raise ValidationError(
                f"{where}: {path.name} could not be loaded as a torch.export program ({_one_line(exc)}); "
                f"it was saved with torch {saved_with}, this is torch {torch.__version__}"
            ) from None
    if input_dtype is None:
        input_dtype = torch.float32  # no recorded dtype: the float32 images go in as they are
    if not input_dtype.is_floating_point:
        raise ValidationError(
            f"{where}: {path.name} takes {str(input_dtype).removeprefix('torch.')} inputs, but invarbench feeds "
            "it images as floating-point values in [0, 1]: export the model with a floating-point example input "
            "such as torch.rand(2, C, H, W), and do any scaling inside the model"
        )
    return ExportedModule(graph_module, saved_with, input_dtype)
