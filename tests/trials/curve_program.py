"""A W&B-style ``program:`` trial that logs a learning curve slowly (``--final``, ``--gap``)."""

from __future__ import annotations

import argparse
import time

import hypero

parser = argparse.ArgumentParser()
parser.add_argument("--final", type=float)
parser.add_argument("--gap", type=float)
parser.add_argument("--epochs", type=int, default=8)
args = parser.parse_args()
hex = hypero.current()
for step in range(1, args.epochs + 1):
    hex.log(step=step, loss=args.final + args.gap / step)
    time.sleep(0.4)
hex.set_result({"loss": args.final + args.gap / args.epochs}, update=True)
