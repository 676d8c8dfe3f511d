"""Compare patch classifiers on PCam: logistic regression vs small CNN vs NASNetMobile.

Trains each architecture with the same recipe (``model.training.train.train``, resumable: run the
same command again after a kill), evaluates each run's best model on the validation set
with ``model.training.evaluate.eval_patches`` (exact ROC AUC), and writes ``results.json`` and a
Markdown table ``results.md`` for the README. NASNetMobile is trained from random
weights and, where ImageNet weights exist locally (``--imagenet-weights`` or the Keras
cache), from ImageNet too. Runs trained elsewhere can join the table with ``--add-run``.

Full comparison (hours on a GPU)::

    python benchmarks/bench_model.py --train PCAM/train --valid PCAM/valid --out bench

Smoke run on the test fixtures (a minute on a CPU)::

    python benchmarks/bench_model.py --train tests/fixtures/pcam \\
        --valid tests/fixtures/pcam --out /tmp/bench --archs logreg small-cnn \\
        --epochs 1 --steps-per-epoch 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench_model")

COLUMNS = (
    "model",
    "init",
    "params",
    "n_train",
    "epochs",
    "train_min",
    "val_auc",
    "val_accuracy",
    "val_loss",
    "eval_patches_per_s",
)


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the table: an architecture and its initialisation."""

    arch: str
    init: str  # "random" or "imagenet"
    imagenet_weights: Path | None = None

    @property
    def name(self) -> str:
        """Folder name of the run."""
        return f"{self.arch}-{self.init}"


def variants(archs: list[str], imagenet_weights: Path | None) -> list[Variant]:
    """The variants to run: NASNet twice where ImageNet weights exist."""
    from model.training.network import cached_imagenet_weights

    weights = imagenet_weights or cached_imagenet_weights()
    out = []
    for arch in archs:
        out.append(Variant(arch=arch, init="random"))
        if arch == "nasnet-mobile":
            if weights is not None:
                out.append(
                    Variant(arch=arch, init="imagenet", imagenet_weights=weights)
                )
            else:
                logger.warning(
                    "no NASNetMobile ImageNet weights (--imagenet-weights or "
                    "the Keras cache): the pretrained row is left out"
                )
    return out


def run_variant(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    """Train (or resume) one variant and evaluate its best model."""
    from model.training.train import TrainConfig, train

    run_dir = args.out / variant.name
    start = time.perf_counter()
    result = train(
        TrainConfig(
            train_data=args.train,
            valid_data=args.valid,
            out_dir=run_dir,
            arch=variant.arch,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            imagenet_weights=variant.imagenet_weights,
            use_cached_imagenet=False,
            limit_train=args.limit_train,
            limit_valid=args.limit_valid,
            steps_per_epoch=args.steps_per_epoch,
        )
    )
    minutes = (time.perf_counter() - start) / 60
    row = evaluate_run(variant.arch, variant.init, run_dir, args)
    row["epochs"] = result.epochs_run
    row["train_min"] = round(minutes, 2)
    return row


def evaluate_run(
    name: str, init: str, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Evaluate ``run_dir/best.keras`` on the validation set; one table row."""
    from model.card import read_card
    from model.predict import load_classifier
    from model.training.evaluate import eval_patches

    model_path = run_dir / "best.keras" if run_dir.is_dir() else run_dir
    card = read_card(model_path)
    report = eval_patches(
        args.valid,
        model=model_path,
        tta=args.tta,
        limit=args.limit_valid,
        roc_png=args.out / f"roc-{name}-{init}.png",
    )
    params = load_classifier(model_path).model.count_params()
    return {
        "model": name,
        "init": init,
        "params": int(params),
        "n_train": card.n_train,
        "epochs": card.epoch,
        "train_min": None,
        "val_auc": round(report.auc, 4),
        "val_accuracy": round(report.accuracy, 4),
        "val_loss": round(report.loss, 4),
        "eval_patches_per_s": round(report.n / max(report.seconds, 1e-9), 1),
        "n_valid": report.n,
        "tta": args.tta,
        "model_sha256": report.model_sha256,
        "run_dir": str(run_dir),
    }


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The comparison table, with the conditions it was measured under."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append(
            "| "
            + " | ".join("" if row.get(c) is None else str(row[c]) for c in COLUMNS)
            + " |"
        )
    n_valid = rows[0]["n_valid"] if rows else 0
    lines.append("")
    lines.append(
        f"Validation: {args.valid} ({n_valid} patches), tta={args.tta}; "
        f"training: {args.train}, batch {args.batch_size}, Adam lr {args.lr}, "
        f"up to {args.epochs} epochs, seed {args.seed}."
    )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="training patch set")
    parser.add_argument(
        "--valid", type=Path, required=True, help="validation patch set"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for runs and tables"
    )
    parser.add_argument(
        "--archs",
        nargs="+",
        default=["logreg", "small-cnn", "nasnet-mobile"],
        choices=["logreg", "small-cnn", "nasnet-mobile"],
    )
    parser.add_argument("--imagenet-weights", type=Path, default=None)
    parser.add_argument(
        "--add-run",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also evaluate an existing run folder or .keras file",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-valid", type=int, default=None)
    parser.add_argument("--tta", choices=["none", "flips", "dihedral"], default="none")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write ``results.json`` and ``results.md``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_variant(v, args) for v in variants(args.archs, args.imagenet_weights)]
    for spec in args.add_run:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--add-run expects NAME=PATH, got {spec!r}")
        rows.append(evaluate_run(name, "existing run", Path(path), args))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = markdown(rows, args)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
