"""Quality of the shipped generators: samples, FID and class accuracy; model cards written from them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from evaluators.data import Digits, load_digits, to_unit, train_test_split
from evaluators.images import save_grid
from evaluators.quality import FIDScorer, digits_fid_scorer
from evaluators.sampling import SampleSpec, generate
from evaluators.zoo import REGISTRY, SHIPPED_GENERATORS, load_model, load_scheduler
from evaluators.zoo.cards import render_card
from evaluators.zoo.classifier import DigitsClassifier, DigitsFeatures


@dataclass(frozen=True)
class GeneratorQuality:
    """Measured quality of one shipped generator under one sampling spec."""

    model: str
    num_images: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    fid: float
    class_accuracy: float
    seconds_per_image: float


def measure_generator(
    name: str, spec: SampleSpec, scorer: FIDScorer, classifier: DigitsClassifier,
    progress: bool = True,
) -> tuple[GeneratorQuality, torch.Tensor]:
    """Generate `spec.num_images` images; return their quality and the images in [0, 1].

    The DiT and the U-Net are sampled with edgediff's DDIM loop, digits-flux with its FLUX pipeline
    (flow-matching Euler steps)."""
    if REGISTRY[name].is_flux:
        from evaluators.zoo.flux_pipeline import generate_spec, load_flux_pipeline

        pipe = load_flux_pipeline(name)
        start = time.perf_counter()
        images, labels = generate_spec(pipe, spec, progress=progress)
    else:
        model, scheduler = load_model(name), load_scheduler(name)
        start = time.perf_counter()
        images, labels = generate(model, scheduler, spec, progress=progress)
    seconds = time.perf_counter() - start
    quality = GeneratorQuality(
        model=name,
        num_images=spec.num_images,
        num_inference_steps=spec.num_inference_steps,
        guidance_scale=spec.guidance_scale,
        seed=spec.seed,
        fid=round(scorer.score(to_unit(images)), 4),
        class_accuracy=round(classifier.accuracy(images, labels), 4),
        seconds_per_image=round(seconds / spec.num_images, 5),
    )
    return quality, to_unit(images)


def sample_shipped(
    spec: SampleSpec, out_dir: Path, classifier: DigitsClassifier | None = None,
    progress: bool = True, names: Sequence[str] = SHIPPED_GENERATORS,
) -> list[tuple[GeneratorQuality, Path]]:
    """Measure the shipped generators `names` under `spec`; save a grid of each one's first 100
    samples."""
    classifier = classifier or load_model("digits-classifier")
    scorer = digits_fid_scorer(classifier)
    results = []
    for name in names:
        if progress:
            print(f"{name}: {spec.num_images} images, {spec.num_inference_steps} steps", flush=True)
        quality, images = measure_generator(name, spec, scorer, classifier, progress)
        results.append((quality, save_grid(images[:100], out_dir / f"{name}-samples.png")))
    return results


def real_fid_floor(classifier: DigitsClassifier, train: Digits, test: Digits) -> float:
    """FID between the held-out split and the training split of the real digits: the floor that
    sample-size noise alone gives in this feature space."""
    scorer = FIDScorer(DigitsFeatures(classifier), to_unit(train.images))
    return round(scorer.score(to_unit(test.images)), 4)


def write_zoo_report(
    spec: SampleSpec, images_dir: Path, command: str, progress: bool = True,
    names: Sequence[str] | None = None,
) -> dict[str, object]:
    """Measure the shipped models (all, or the generators `names`: the others keep their numbers),
    save sample grids, and rewrite their model cards."""
    classifier = load_model("digits-classifier")
    metrics: dict[str, object] = {}
    if names is None:
        train, test = train_test_split(load_digits())
        metrics["digits-classifier"] = {
            "test_accuracy": round(classifier.accuracy(test.images, test.labels), 4),
            "test_images": len(test),
            "real_fid_floor": real_fid_floor(classifier, train, test),
            "command": command,
        }
    chosen = SHIPPED_GENERATORS if names is None else tuple(names)
    for quality, grid in sample_shipped(spec, images_dir, classifier, progress, chosen):
        metrics[quality.model] = {**asdict(quality), "grid": str(grid), "command": command}
    for name, values in metrics.items():
        folder = Path(REGISTRY[name].source)
        (folder / "metrics.json").write_text(json.dumps(values, indent=2) + "\n")
        write_card(name)
    return metrics


def write_card(name: str) -> Path:
    """Render README.md for a shipped model from its config, training.json and metrics.json."""
    entry = REGISTRY[name]
    folder = Path(entry.source)
    config_path = folder / (entry.subfolder or "") / "config.json"
    config = json.loads(config_path.read_text())
    training = json.loads((folder / "training.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    size_kb = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1024
    text = render_card(name, entry, config, training, metrics, size_kb)
    (folder / "README.md").write_text(text)
    return folder / "README.md"
