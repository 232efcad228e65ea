"""Finding a sweep's trial function without running user code, and importing it on a worker.

A trial is ``path/to/file.py:function`` (relative to the spec file) or an importable
``package.module:function``. Validation reads the source's syntax tree only; nothing of the
user's is imported until :func:`load_trial` runs on the worker.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypero.errors import SpecError

_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def resolve_trial(trial: str, base_dir: Path) -> tuple[tuple[str, str], str | None]:
    """``(ref, note)``: ref is (absolute file path or module name, function name).

    Raises ``ValueError`` saying what is wrong; ``note`` says what could not be checked.
    """
    target, sep, func = trial.strip().rpartition(":")
    if not sep or not target or not func.isidentifier():
        raise ValueError(f"must be 'file.py:function' or 'package.module:function' (got {trial!r})")
    if target.endswith(".py") or "/" in target or os.sep in target:
        file = (base_dir / Path(target).expanduser()).resolve()
        if not file.is_file():
            raise ValueError(f"file {target} not found (looked for {file})")
        _check_defines(file, func, target)
        return (str(file), func), None
    if not _MODULE_RE.match(target):
        raise ValueError(f"{target!r} is neither a .py file nor a module name")
    origin, found_on_path = _find_module(target, base_dir)
    if origin is None:
        raise ValueError(f"module {target} not found (searched sys.path, the working "
                         f"directory and {base_dir})")
    if not origin.endswith(".py"):
        return (target, func), f"could not check that {target} defines {func} (no Python source)"
    _check_defines(Path(origin), func, target)
    # a module only the spec's directory or the working directory holds: load it by location
    return ((target if found_on_path else origin), func), None


def resolve_program(program: str, base_dir: Path) -> str:
    """The absolute path of a W&B ``program`` script; ``ValueError`` if it does not exist."""
    file = (base_dir / Path(program).expanduser()).resolve()
    if not file.is_file():
        raise ValueError(f"file {program} not found (looked for {file})")
    return str(file)


def _find_module(name: str, base_dir: Path) -> tuple[str | None, bool]:
    """(source file or None, whether sys.path finds it), importing no parent package."""
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None):  # e.g. os.path
        return str(loaded.__file__), True
    parts = name.split(".")
    for search, on_path in ((None, True), ([os.getcwd(), str(base_dir)], False)):
        try:
            spec = (importlib.util.find_spec(parts[0]) if search is None
                    else importlib.machinery.PathFinder.find_spec(parts[0], search))
        except (ImportError, ValueError):  # e.g. a module in sys.modules without __spec__
            spec = None
        for i in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                spec = None
                break
            spec = importlib.machinery.PathFinder.find_spec(
                ".".join(parts[: i + 1]), list(spec.submodule_search_locations))
        if spec is not None:
            return spec.origin or "", on_path
    return None, False


def _check_defines(file: Path, func: str, shown: str) -> None:
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as e:
        raise ValueError(f"{shown}:{e.lineno}: syntax error: {e.msg}") from None
    except OSError as e:
        raise ValueError(f"cannot read {shown}: {e.strerror}") from None
    names, star = _top_level_names(tree.body)
    if func not in names and not star:
        funcs = sorted(n for n, is_def in names.items() if is_def)
        hint = f"; did you mean {close!r}?" if (close := _close(func, funcs)) else (
            f" (it defines {', '.join(funcs[:8])}{', ...' if len(funcs) > 8 else ''})"
            if funcs else "")
        raise ValueError(f"{shown} defines no function {func!r}{hint}")


def _close(word: str, words: list[str]) -> str | None:
    found = difflib.get_close_matches(word, words, n=1, cutoff=0.6)
    return found[0] if found else None


def _top_level_names(body: list[ast.stmt]) -> tuple[dict[str, bool], bool]:
    """Names bound at module level ({name: is a def}), and whether a ``*`` import hides some."""
    names: dict[str, bool] = {}
    star = False
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = True
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((t.id, False) for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                star = star or alias.name == "*"
                names[alias.asname or alias.name.split(".")[0]] = False
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in _blocks(node):
                inner, inner_star = _top_level_names(block)
                names.update(inner)
                star = star or inner_star
    return names, star


def _blocks(node: ast.If | ast.Try | ast.With) -> list[list[ast.stmt]]:
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, ast.Try):
        return [node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]]
    return [node.body]


def load_trial(ref: tuple[str, str]) -> Callable[..., Any]:
    """Import a trial function from :attr:`Spec.trial_ref`.

    A file is loaded by location under a unique module name (its directory put first on
    ``sys.path``, as when Python runs a script); a module name is imported normally. Errors
    raised by the user's module propagate; a missing function raises :class:`SpecError`.
    """
    target, func = ref
    if os.path.isabs(target) or target.endswith(".py"):
        module = _import_file(Path(target))
    else:
        module = importlib.import_module(target)
    fn = getattr(module, func, None)
    if not callable(fn):
        what = "is not callable" if fn is not None else "is not defined"
        raise SpecError(f"{func} {what} in {target}", key="trial")
    return fn  # type: ignore[no-any-return]


def _import_file(path: Path) -> Any:
    path = path.resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"hypero_trial_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot load {path} as Python", key="trial")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
