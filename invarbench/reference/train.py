"""Train the two reference models on the mnist5k train split (4,000 images).

    python -m invarbench.reference.train --out model_cards/mnist5k

writes ``lenet-standard.safetensors`` (plain training) and ``lenet-pgd-at.safetensors`` (PGD
adversarial training, Madry et al.: L-inf, eps 0.3) and prints their sha256 for the cards.
Training is seeded and single-threaded, so the same torch version on the same CPU type gives
the same bytes. The test split is never touched.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from invarbench.data import EvalData, load_eval_data
from invarbench.models.architectures import build_architecture
from invarbench.models.loading import sha256_file


@dataclass(frozen=True)
class TrainConfig:
    name: str
    epochs: int
    adversarial: bool
    eps: float = 0.3
    attack_steps: int = 10
    attack_step_size: float = 0.04
    eps_warmup_epochs: int = 0  # the budget grows linearly from 0 over these epochs
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0


CONFIGS = (
    TrainConfig(name="lenet-standard", epochs=8, adversarial=False),
    TrainConfig(name="lenet-pgd-at", epochs=30, adversarial=True, eps_warmup_epochs=5),
)


def _pgd_train_examples(model, x, y, eps: float, steps: int, alpha: float, gen: torch.Generator):
    """Fixed-step L-inf PGD from a random start: the worst iterate for training (no early exit)."""
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    x_adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def train(cfg: TrainConfig, log=print, data: EvalData | None = None) -> torch.nn.Module:
    """Train a LeNet by ``cfg`` on ``data`` (default: the mnist5k train split); ``log`` is print-like."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if data is None:
        data = load_eval_data("mnist5k", split="train")
    model = build_architecture("lenet")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(data)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        eps = cfg.eps * min(1.0, (epoch + 1) / cfg.eps_warmup_epochs) if cfg.eps_warmup_epochs else cfg.eps
        total, correct = 0.0, 0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            x, y = data.x[idx], data.y[idx]
            if cfg.adversarial:
                model.eval()
                x = _pgd_train_examples(model, x, y, eps, cfg.attack_steps, cfg.attack_step_size * eps / cfg.eps, gen)
                model.train()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        log(
            f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}: eps {eps:.3f} loss {total / n:.4f} train acc {correct / n:.3f}"
        )
    model.eval()
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("model_cards/mnist5k"), help="output folder")
    parser.add_argument("--only", choices=[c.name for c in CONFIGS], help="train only this model")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    for cfg in CONFIGS:
        if args.only and cfg.name != args.only:
            continue
        t0 = time.perf_counter()
        model = train(cfg)
        path = args.out / f"{cfg.name}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        print(f"{path}: sha256 {sha256_file(path)} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
