"""``ix2x train-classifier``: train the phantom classifier behind the metrics (CPU, minutes)."""

from __future__ import annotations

import argparse

HELP = "train the phantom finding/attribute classifier used by the metrics"
DESCRIPTION = """Generate phantom pairs (a seed the benchmark suites do not use), train the small CNN
of ix2x.classifiers.phantom on the train split, select on val, score on the held-out test split, and
write OUT/phantom.safetensors + OUT/phantom.json (config, settings, scores). Weights are written only
when they pass the shipping criterion (held-out AUROC >= 0.95 per finding; sex and habitus accuracy
>= 0.95; age Pearson r >= 0.95) unless --force."""
EXAMPLES = """examples:
  ix2x train-classifier --out ix2x/classifiers/weights
  ix2x train-classifier --out /tmp/clf --n 500 --epochs 2 --force
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ix2x.training.classifier_config import TrainConfig

    d = TrainConfig()
    p.add_argument("--out", required=True, metavar="DIR", help="where phantom.safetensors/.json go")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="an existing phantom dataset (default: generate one into OUT/data-*)")
    p.add_argument("--n", type=int, default=d.n, help=f"phantom pairs to generate (default {d.n})")
    p.add_argument("--data-seed", type=int, default=d.data_seed)
    p.add_argument("--data-size", type=int, default=d.data_size, help="render size in px")
    p.add_argument("--size", type=int, default=d.size, help="network input size in px")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--force", action="store_true", help="write weights even if they fail the criterion")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ix2x.training.classifiers import TrainConfig, save, train

    tc = TrainConfig(n=args.n, data_seed=args.data_seed, data_size=args.data_size, size=args.size,
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                     threads=args.threads)
    out = Path(args.out)
    data = Path(args.data) if args.data else out / f"data-n{tc.n}-seed{tc.data_seed}-size{tc.data_size}"
    if not (data / "instructions.csv").is_file():
        if args.data:
            print(f"error: {data} has no instructions.csv; pass a phantom dataset folder or omit --data.")
            return 2
        from ix2x.data.phantom import generate

        generate(data, n=tc.n, seed=tc.data_seed, size=tc.data_size)
    net, cfg = train(data, tc)
    held_out = cfg["scores"]["test_held_out"]
    print(json.dumps(held_out, indent=2))
    if not held_out["passes"] and not args.force:
        print("Held-out scores fail the shipping criterion; weights not written (use --force to write).")
        return 1
    print(f"wrote {save(net, cfg, out)}")
    return 0
