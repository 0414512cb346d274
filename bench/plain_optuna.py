"""The search as a plain Optuna script would write it: the peer bench/vs_optuna.py runs against.

Written the way Optuna's multi-objective tutorial writes one: a define-by-run objective that
builds the model from the trial, a torch DataLoader training loop, ptflops for the MACs,
`optimize` with NSGA-II's defaults; no pruning, no reuse of duplicate architectures, no
landmarks. To compare searches and not spaces or recipes, it samples the same space, trains
with the same recipe (SGD with Nesterov momentum, one-cycle learning rate, label smoothing,
weight decay on the weights only, batch 64, 3 epochs of 10,000 images) and validates on the
same split as `python -m nas.search`.

    python bench/plain_optuna.py --storage sqlite:///plain.db --study plain-0 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F
from ptflops import get_model_complexity_info
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search_spaces  # noqa: E402
from nas.builder import build_model  # noqa: E402
from nas.data import load_dataset  # noqa: E402

EPOCHS, IMAGES_PER_EPOCH, BATCH = 3, 10_000, 64
PEAK_LR, MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING, WARMUP = 0.1, 0.9, 5e-4, 0.1, 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="fashion_mnist")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = load_dataset(args.dataset)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(data.std).view(1, -1, 1, 1) * 255
    train_set = TensorDataset(data.train_x, data.train_y)
    space = search_spaces.get("inception_to_xception").for_input(data.input_shape)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        model = build_model(space.sample(trial), data.in_channels, data.num_classes)
        macs, _ = get_model_complexity_info(
            model, data.input_shape, as_strings=False, print_per_layer_stat=False
        )
        sampler = RandomSampler(train_set, num_samples=IMAGES_PER_EPOCH)
        loader = DataLoader(train_set, batch_size=BATCH, sampler=sampler, drop_last=True)
        decayed = [p for p in model.parameters() if p.ndim > 1]
        others = [p for p in model.parameters() if p.ndim <= 1]
        optimizer = torch.optim.SGD(
            [{"params": decayed, "weight_decay": WEIGHT_DECAY}, {"params": others}],
            lr=PEAK_LR,
            momentum=MOMENTUM,
            nesterov=True,
        )
        total = EPOCHS * len(loader)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            PEAK_LR,
            total_steps=total,
            pct_start=WARMUP,
            anneal_strategy="linear",
            cycle_momentum=False,
        )
        for _ in range(EPOCHS):
            model.train()
            for images, labels in loader:
                loss = F.cross_entropy(
                    model((images.float() - mean) / std), labels, label_smoothing=LABEL_SMOOTHING
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(data.val_x), 256):
                images = (data.val_x[start : start + 256].float() - mean) / std
                correct += (model(images).argmax(1) == data.val_y[start : start + 256]).sum()
        return correct.item() / len(data.val_x), float(macs)

    study = optuna.create_study(
        storage=args.storage,
        study_name=args.study,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.NSGAIISampler(seed=args.seed),
        load_if_exists=True,
    )
    try:
        study.optimize(objective, n_trials=10_000)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
