"""A W&B-style sweep script: options from argparse, its hex from ``hypero.current()``."""

from __future__ import annotations

import argparse
import os
import sys

import hypero


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--opt", choices=["adam", "sgd"], required=True)
    parser.add_argument("--tag", default="none")
    args = parser.parse_args()
    hex = hypero.current()
    for step in range(3):
        hex.log(step=step, y=args.x * step)
    hex.set_result({"y": args.x ** 2, "opt": args.opt, "tag": args.tag})
    hex.set_meta({
        "argv": sys.argv[1:], "python": sys.executable, "cwd": os.getcwd(),
        "hex_env": os.environ["HYPERO_HEX_ID"], "attempt_env": os.environ["HYPERO_ATTEMPT"],
        "lr": hex.uniform("lr", 0.0, 1.0),
    })


if __name__ == "__main__":
    main()
