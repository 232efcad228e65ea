"""W&B command macros of program: trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypero import command

PARAMS = {"lr": 0.01, "deep": True, "shallow": False, "model.width": 64, "tags": ["a", "b"]}
NAMES = ["lr", "deep", "shallow", "model.width", "tags"]


def test_default_command_is_the_w_and_b_agents(tmp_path: Path) -> None:
    argv = command.build(None, "/x/train.py", PARAMS, NAMES, tmp_path, {})
    assert argv == ["/usr/bin/env", sys.executable, "/x/train.py", "--lr=0.01", "--deep=True",
                    "--shallow=False", "--model.width=64", '--tags=["a", "b"]']


def test_every_macro(tmp_path: Path) -> None:
    cmd = ["${interpreter}", "${program}", "${args_no_hyphens}", "${args_no_boolean_flags}",
           "--json=${args_json}", "--file=${args_json_file}", "--home=${envvar:MY_HOME}",
           "--none=${envvar:NOT_SET}", "plain"]
    argv = command.build(cmd, "p.py", PARAMS, NAMES, tmp_path, {"MY_HOME": "/h"})
    assert argv[:2] == [sys.executable, "p.py"]
    assert argv[2:7] == ["lr=0.01", "deep=True", "shallow=False", "model.width=64",
                         'tags=["a", "b"]']
    assert argv[7:11] == ["--lr=0.01", "--deep", "--model.width=64", '--tags=["a", "b"]']
    assert json.loads(argv[11].removeprefix("--json=")) == PARAMS
    path = Path(argv[12].removeprefix("--file="))
    assert path.parent == tmp_path and json.loads(path.read_text()) == PARAMS
    assert argv[13:] == ["--home=/h", "--none=", "plain"]
