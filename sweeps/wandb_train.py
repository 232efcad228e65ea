"""A W&B-style training script: argparse for the parameters, hypero.current() to record."""

import argparse
import math

import hypero


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--optimizer", choices=["adam", "sgd"], required=True)
    p.add_argument("--model.width", dest="width", type=int, required=True)
    p.add_argument("--model.depth", dest="depth", type=int, required=True)
    args = p.parse_args()
    hex = hypero.current()
    loss = 1.0
    for epoch in range(5):
        decay = 0.9 if args.optimizer == "adam" else 0.95
        loss = loss * decay + abs(math.log10(args.lr) + 2.5) / 100
        hex.log(step=epoch, valid_loss=loss)
    hex.set_result({"valid_loss": loss, "width": args.width, "depth": args.depth}, update=True)


if __name__ == "__main__":
    main()
