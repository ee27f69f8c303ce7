"""Real small runs for the tests of the commands that use a run.

:func:`make_runs` trains a tiny notation network on real Fashion-MNIST for a fraction of an
epoch per seed and writes each run folder with :class:`cnnlab.train.run.RunWriter`, as
``cnnlab train`` does.  Small enough for a loaded 2-core machine: a few seconds per run.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

SPEC = "conv3-8-relu-maxpool-conv3-16-relu-maxpool-fc-10"
VAL_SPLIT = 0.1
STEPS = 60
BATCH = 64


def make_runs(root: Path, seeds=(0, 1, 2)) -> list[Path]:
    """One run folder ``root/seed<S>`` per seed; returns their paths."""
    from cnnlab.data import BatchPipeline, load_dataset
    from cnnlab.train.evaluate import evaluate
    from cnnlab.train.run import RunWriter, build_from_record

    full, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    paths = []
    for seed in seeds:
        # Each run holds out its own validation images (its seed), as cnnlab train does.
        train, val = full.split_validation(VAL_SPLIT, seed=seed)
        record = {
            "kind": "notation",
            "target": SPEC,
            "kwargs": {},
            "in_channels": 1,
            "input_size": [28, 28],
            "num_classes": 10,
            "classes": list(train.classes),
            "mean": list(train.mean),
            "std": list(train.std),
            "dataset": train.name,
        }
        torch.manual_seed(seed)
        model = build_from_record(record)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        path = root / f"seed{seed}"
        writer = RunWriter(path, record)
        writer.write_config(
            {
                "target": SPEC,
                "dataset": train.name,
                "recipe": {"name": "test", "batch_size": BATCH, "iterations": STEPS},
                "options": {"seed": seed, "val_split": VAL_SPLIT},
            }
        )
        batches = BatchPipeline(train, BATCH, seed=seed, drop_last=True)
        model.train()
        for step, (x, y) in enumerate(batches.epoch(0)):
            if step == STEPS:
                break
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        v = evaluate(model, val)
        writer.log(
            {"epoch": 1, "train_loss": loss.item(), "val_loss": v.loss, "val_top1": v.top1,
             "val_top5": v.top5, "lr": 0.05, "seconds": 1.0}
        )  # fmt: skip
        writer.save_weights(model, "best")
        # "final" differs from "best": one more step, so the tests can tell them apart.
        x, y = next(iter(batches.epoch(1)))
        model.train()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        writer.save_weights(model.eval(), "final")
        t = evaluate(model, test)
        writer.log({"final": True, "test_loss": t.loss, "test_top1": t.top1, "test_top5": t.top5})
        writer.write_json("final.json", {"per_class": t.per_class, "confusion": t.confusion})
        paths.append(path)
    return paths
