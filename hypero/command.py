"""The command line of a W&B-style ``program:`` trial, with W&B's macros expanded."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hypero import codec

DEFAULT = ["${env}", "${interpreter}", "${program}", "${args}"]
_MACRO = re.compile(r"\$\{([^}]*)\}")
_LISTS = ("${args}", "${args_no_hyphens}", "${args_no_boolean_flags}")


def format_arg(value: Any) -> str:
    """A parameter's value as W&B passes it on the command line."""
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value)
    return json.dumps(value)


def _list_macro(item: str, params: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    if item == "${args}":
        return [f"--{k}={format_arg(params[k])}" for k in names]
    if item == "${args_no_hyphens}":
        return [f"{k}={format_arg(params[k])}" for k in names]
    # ${args_no_boolean_flags}: True is a bare --flag, False is left out
    out = []
    for k in names:
        v = params[k]
        if v is True:
            out.append(f"--{k}")
        elif v is not False:
            out.append(f"--{k}={format_arg(v)}")
    return out


def build(
    command: Sequence[str] | None, program: str | None, params: Mapping[str, Any],
    names: Sequence[str], workdir: Path, env: Mapping[str, str],
) -> list[str]:
    """``command`` (default: W&B's agent command) with its macros expanded.

    ``names`` are the parameters passed (the spec's, in its order); ``workdir`` receives the
    file of ``${args_json_file}``; ``env`` answers ``${envvar:NAME}``.
    """
    doc = {k: params[k] for k in names}

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "env":
            return "/usr/bin/env"
        if name == "interpreter":
            return sys.executable
        if name == "program":
            return str(program)
        if name == "args_json":
            return codec.dumps(doc)
        if name == "args_json_file":
            path = workdir / "args.json"
            path.write_text(codec.dumps(doc))
            return str(path)
        if name.startswith("envvar:"):
            return env.get(name[len("envvar:"):], "")
        return m.group(0)

    out: list[str] = []
    for item in command or DEFAULT:
        if item in _LISTS:
            out.extend(_list_macro(item, params, names))
        else:
            out.append(_MACRO.sub(one, item))
    return out
