"""Training of the embedded default models on the digits data set.

`edgediff train NAME` calls these; each run writes the weights (safetensors, diffusers layout) and
`training.json` (command, seed, iterations, time, final loss) into the model's folder.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluators.data import IMAGE_SIZE, NUM_CLASSES, load_digits, train_test_split
from evaluators.zoo import WEIGHTS_DIR, flux
from evaluators.zoo.classifier import DigitsClassifier

NUM_TRAIN_TIMESTEPS = 1000
LABEL_DROPOUT = 0.1  # share of labels replaced by the null class, so CFG has an unconditional model


def build_dit() -> torch.nn.Module:
    """DiT with patch size 1 on 16×16 digits: 256 tokens, 8 layers of 4 heads × 16 channels."""
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(
        num_attention_heads=4,
        attention_head_dim=16,
        in_channels=1,
        out_channels=1,
        num_layers=8,
        sample_size=IMAGE_SIZE,
        patch_size=1,
        num_embeds_ada_norm=NUM_CLASSES,  # the null class is row NUM_CLASSES of the label table
        norm_type="ada_norm_zero",
    )


def build_unet() -> torch.nn.Module:
    """U-Net on 16×16 digits, 3 levels (16, 8, 4), 2 resnets per level, attention at 8×8.

    Shaped like DDPM CIFAR-10's U-Net at a smaller scale; its 9 skip connections (conv_in and each
    resnet and downsampler) are the DeepCache branches 0..8.
    """
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=IMAGE_SIZE,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=16,
        norm_num_groups=8,
        num_class_embeds=NUM_CLASSES + 1,  # 10 digits + the null class
    )


@functools.cache
def _ddpm() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2")


def _epsilon_loss(model: torch.nn.Module, x0: torch.Tensor, labels: torch.Tensor,
                  gen: torch.Generator) -> torch.Tensor:
    """DDPM's loss: predict the noise added at a uniform timestep (cosine schedule)."""
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (x0.shape[0],), generator=gen)
    pred = model(_ddpm().add_noise(x0, noise, t), t, class_labels=labels).sample
    return F.mse_loss(pred[:, : x0.shape[1]], noise)


def _save_ddim(subfolder: str) -> Callable[[torch.nn.Module, Path], None]:
    def save(model: torch.nn.Module, out_dir: Path) -> None:
        from diffusers import DDIMScheduler

        model.save_pretrained(out_dir / subfolder)
        DDIMScheduler.from_config(_ddpm().config).save_pretrained(out_dir / "scheduler")

    return save


def _save_flux(model: torch.nn.Module, out_dir: Path) -> None:
    model.transformer.save_pretrained(out_dir / "transformer")
    model.text_encoder.save_pretrained(out_dir / "text_encoder")
    flux.build_scheduler().save_pretrained(out_dir / "scheduler")


@dataclass(frozen=True)
class Recipe:
    """How one generator is built, trained and saved.

    Attributes:
        build: a fresh untrained model.
        loss: (model, x0, labels after dropout, generator) to the training loss of one batch.
        save: writes a model (the EMA snapshot) into its folder, with its scheduler.
        drops_labels_itself: the model replaces labels by the null class in training mode itself
            (diffusers' DiT label embedding does), so the loop must not.
        extra: what training.json records about the objective.
    """

    build: Callable[[], torch.nn.Module]
    loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
    save: Callable[[torch.nn.Module, Path], None]
    drops_labels_itself: bool = False
    extra: dict = field(default_factory=dict)


_DDPM_EXTRA = {"noise_schedule": "squaredcos_cap_v2"}
GENERATORS: dict[str, Recipe] = {
    "digits-dit": Recipe(build_dit, _epsilon_loss, _save_ddim("transformer"), True, _DDPM_EXTRA),
    "digits-unet": Recipe(build_unet, _epsilon_loss, _save_ddim("unet"), False, _DDPM_EXTRA),
    "digits-flux": Recipe(flux.FluxDigits, flux.flow_matching_loss, _save_flux, False,
                          {"objective": "rectified flow (velocity), logit-normal sigma",
                           "scheduler": "FlowMatchEulerDiscreteScheduler, shift 1"}),
}


@dataclass
class TrainingRecord:
    """What a training run did, saved as training.json beside the weights."""

    model: str
    command: str
    seed: int
    iterations: int
    batch_size: int
    learning_rate: float
    train_images: int
    seconds: float
    final_loss: float
    extra: dict
    torch_threads: int = field(default_factory=torch.get_num_threads)

    def save(self, out_dir: Path) -> TrainingRecord:
        (out_dir / "training.json").write_text(json.dumps(asdict(self), indent=2) + "\n")
        return self


def _mean_tail(values: list[float], n: int) -> float:
    tail = values[-n:]
    return round(sum(tail) / len(tail), 5)


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _lr_factor(it: int, total: int, warmup: int) -> float:
    if it < warmup:
        return (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine down to 10%


def train_generator(
    name: str,
    out_dir: Path | None = None,
    iterations: int = 4000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    save_every: int = 500,
    command: str = "",
) -> TrainingRecord:
    """Train a class-conditional diffusion model (its recipe's objective) on all digits.

    Labels are replaced by the null class with probability LABEL_DROPOUT, so classifier-free
    guidance works at sampling. Weights saved are the exponential moving average of the parameters.
    """
    from diffusers.training_utils import EMAModel

    recipe = GENERATORS[name]
    out_dir = Path(out_dir or WEIGHTS_DIR / name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = load_digits()
    model = recipe.build().train()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    warmup = min(200, iterations // 10 + 1)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: _lr_factor(it, iterations, warmup)
    )
    ema = EMAModel(model.parameters(), decay=0.999, use_ema_warmup=True, power=2 / 3)

    def save() -> None:
        snapshot = recipe.build()
        snapshot.load_state_dict(model.state_dict())
        ema.copy_to(snapshot.parameters())
        recipe.save(snapshot, out_dir)

    start, losses = time.time(), []
    bar = tqdm(range(iterations), desc=f"train {name}", mininterval=5)
    for it in bar:
        idx = torch.randint(0, len(data), (batch_size,), generator=gen)
        x0, labels = data.images[idx], data.labels[idx].clone()
        if not recipe.drops_labels_itself:
            labels[torch.rand(batch_size, generator=gen) < LABEL_DROPOUT] = NUM_CLASSES
        loss = recipe.loss(model, x0, labels, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(model.parameters())
        losses.append(loss.item())
        if (it + 1) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}")
        if save_every and (it + 1) % save_every == 0:
            save()
    save()
    return TrainingRecord(
        model=name, command=command, seed=seed, iterations=iterations, batch_size=batch_size,
        learning_rate=learning_rate, train_images=len(data), seconds=round(time.time() - start, 1),
        final_loss=_mean_tail(losses, 200),
        extra={**recipe.extra, "ema_decay": 0.999, "label_dropout": LABEL_DROPOUT,
               "parameters": _parameters(model)},
    ).save(out_dir)


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to one pixel and add a little noise: generated digits are never pixel-perfect."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    n, _, h, w = images.shape
    dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
    shifted = padded[:, :, dy : dy + h, dx : dx + w]
    return shifted + 0.1 * torch.randn(shifted.shape, generator=gen)


def train_classifier(
    out_dir: Path | None = None, epochs: int = 40, batch_size: int = 64,
    learning_rate: float = 2e-3, seed: int = 0, command: str = "",
) -> TrainingRecord:
    """Train the digits classifier on the training split; report held-out accuracy."""
    out_dir = Path(out_dir or WEIGHTS_DIR / "digits-classifier")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train, test = train_test_split(load_digits())
    model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = epochs * steps_per_epoch
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: _lr_factor(it, total, 50))
    start, losses = time.time(), []
    for _ in tqdm(range(epochs), desc="train digits-classifier", mininterval=5):
        model.train()
        for idx in torch.randperm(len(train), generator=gen).split(batch_size):
            logits = model(_augment(train.images[idx], gen))
            loss = F.cross_entropy(logits, train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_sched.step()
            losses.append(loss.item())
    model.eval()
    model.save_pretrained(out_dir)
    return TrainingRecord(
        model="digits-classifier", command=command, seed=seed, iterations=total,
        batch_size=batch_size, learning_rate=learning_rate, train_images=len(train),
        seconds=round(time.time() - start, 1), final_loss=_mean_tail(losses, 50),
        extra={"epochs": epochs, "test_images": len(test),
               "test_accuracy": round(model.accuracy(test.images, test.labels), 4),
               "train_accuracy": round(model.accuracy(train.images, train.labels), 4),
               "parameters": _parameters(model)},
    ).save(out_dir)
