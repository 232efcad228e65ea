"""A W&B-style script for ``wandb_bayes.yaml``: a simulated training run logging each epoch.

Replace the simulation by your training loop; ``hex.log(step=epoch, val_loss=...)`` is what
hyperband judges, and a stopped trial gets SIGTERM (what it logged so far is kept).
"""

import argparse
import math
import time

import hypero


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--optimizer", choices=["adam", "sgd"], required=True)
    p.add_argument("--batch_size", type=int, required=True)
    p.add_argument("--model.dropout", dest="dropout", type=float, required=True)
    p.add_argument("--model.depth", dest="depth", type=int, required=True)
    p.add_argument("--epochs", type=int, default=9)
    args = p.parse_args()
    hex = hypero.current()
    best = 0.02 * (math.log10(args.lr) + 3) ** 2 + (args.dropout - 0.2) ** 2 \
        + 0.01 * (args.depth - 3) ** 2 + 0.02 * abs(math.log2(args.batch_size / 64))
    best += 0.0 if args.optimizer == "adam" else 0.05
    loss = math.inf
    for epoch in range(1, args.epochs + 1):
        loss = best + (0.2 + 0.05 * args.depth) / epoch
        hex.log(step=epoch, val_loss=loss)
        time.sleep(0.5)  # an epoch; hyperband reads a program's points once a second
    hex.set_result({"val_loss": loss}, update=True)


if __name__ == "__main__":
    main()
