"""Model zoo: the embedded digits models shipped with edgediff, and the real checkpoints by hub id.

Every model loads through the normal diffusers `from_pretrained(source, subfolder=...)` path, so a
shipped directory, a local copy of a hub repository and a hub id (on a machine that reaches the hub)
all go through the same code.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evaluators.errors import EvaluatorError
from evaluators.families import FAMILIES

if TYPE_CHECKING:  # torch is imported only where a model is loaded, so the CLI starts fast
    import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"

ModelKind = Literal["dit", "unet", "classifier"]

# The zoo's kinds: every transformer family lists as "dit", every U-Net family as "unet"
# (`evaluators.families` knows the classes), plus the shipped FID classifier and the models the zoo
# ships before plans have a family for them (digits-flux).
_DENOISER_KINDS = {"transformer": "dit", "unet": "unet"}
_MODEL_CLASSES = {**{cls: _DENOISER_KINDS[family.denoiser] for cls, family in FAMILIES.items()},
                  "FluxTransformer2DModel": "dit", "DigitsClassifier": "classifier"}


class ModelLoadError(EvaluatorError):
    """A model could not be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    """Where a named model lives and how to load it.

    Attributes:
        name: the short name used on the command line (`--model digits-dit`).
        model_class: the diffusers class (or `DigitsClassifier`) that `from_pretrained` is called on.
        source: a local directory or a model-hub id.
        subfolder: the model's folder inside `source` (`transformer`, `unet`), or None for the root.
        scheduler_subfolder: where the scheduler config lives inside `source`.
        description: one line for `edgediff models`.
        shipped: True for the embedded default models committed with edgediff.
    """

    name: str
    model_class: str
    source: str
    subfolder: str | None
    scheduler_subfolder: str | None
    description: str
    shipped: bool = False

    @property
    def kind(self) -> ModelKind:
        return _MODEL_CLASSES[self.model_class]  # type: ignore[return-value]

    @property
    def is_flux(self) -> bool:
        """A FLUX-family transformer (sampled by flow matching, not DDIM)."""
        return self.model_class == "FluxTransformer2DModel"


def _shipped(name: str, model_class: str, subfolder: str | None, description: str) -> ModelEntry:
    sched = "scheduler" if subfolder else None
    return ModelEntry(
        name, model_class, str(WEIGHTS_DIR / name), subfolder, sched, description, shipped=True
    )


def _hub(name: str, model_class: str, repo: str, subfolder: str | None, desc: str) -> ModelEntry:
    return ModelEntry(name, model_class, repo, subfolder, "scheduler" if subfolder else None, desc)


REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        _shipped("digits-dit", "DiTTransformer2DModel", "transformer",
                 "class-conditional DiT, 16x16 digits, patch 1 (256 tokens), 8 layers, CFG"),
        _shipped("digits-unet", "UNet2DModel", "unet",
                 "class-conditional U-Net, 16x16 digits, 3 levels, 9 skip branches, CFG"),
        _shipped("digits-flux", "FluxTransformer2DModel", "transformer",
                 "FLUX-family MMDiT, 16x16 digits packed 2x2 (64 tokens), 2+6 blocks, flow, CFG"),
        _shipped("digits-classifier", "DigitsClassifier", None,
                 "digits classifier; its penultimate layer is the embedded default's FID feature"),
        _hub("dit-xl-2-256", "DiTTransformer2DModel", "facebook/DiT-XL-2-256", "transformer",
             "DiT-XL/2, ImageNet 256x256 (latent 32x32)"),
        _hub("dit-xl-2-512", "DiTTransformer2DModel", "facebook/DiT-XL-2-512", "transformer",
             "DiT-XL/2, ImageNet 512x512 (latent 64x64)"),
        _hub("pixart-alpha-512", "PixArtTransformer2DModel", "PixArt-alpha/PixArt-XL-2-512x512",
             "transformer", "PixArt-alpha XL/2, 512x512"),
        _hub("pixart-alpha-1024", "PixArtTransformer2DModel", "PixArt-alpha/PixArt-XL-2-1024-MS",
             "transformer", "PixArt-alpha XL/2, 1024x1024"),
        _hub("pixart-sigma-512", "PixArtTransformer2DModel", "PixArt-alpha/PixArt-Sigma-XL-2-512-MS",
             "transformer", "PixArt-Sigma XL/2, 512x512"),
        _hub("pixart-sigma-1024", "PixArtTransformer2DModel",
             "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", "transformer", "PixArt-Sigma XL/2, 1024x1024"),
        _hub("sd-1.5", "UNet2DConditionModel", "stable-diffusion-v1-5/stable-diffusion-v1-5", "unet",
             "Stable Diffusion v1.5 U-Net, 512x512 (latent 64x64)"),
        _hub("ddpm-cifar10", "UNet2DModel", "google/ddpm-cifar10-32", None,
             "DDPM CIFAR-10 U-Net, 32x32, unconditional"),
    ]
}


SHIPPED: tuple[str, ...] = tuple(n for n, e in REGISTRY.items() if e.shipped)
SHIPPED_GENERATORS: tuple[str, ...] = tuple(n for n in SHIPPED if REGISTRY[n].kind != "classifier")


def resolve(name_or_path: str) -> ModelEntry:
    """A registry name, a local directory or a hub id (`owner/name`) to a ModelEntry."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _entry_from_directory(path)
    if _looks_local(name_or_path):  # ./x, ../x, /x, ~/x: a folder, never a hub id
        state = "is not a folder" if path.exists() else "does not exist"
        raise ModelLoadError(f"model folder '{name_or_path}' {state}: give a diffusers model or "
                             "pipeline folder, a registry name ('edgediff models') or a hub id")
    if name_or_path.count("/") == 1 and not path.exists():
        # A hub id not in the registry: treat it as a pipeline repository with a transformer or
        # unet folder; the loader says clearly if neither exists.
        return ModelEntry(name_or_path, "", name_or_path, None, None, "hub id")
    known = ", ".join(REGISTRY)
    raise ModelLoadError(
        f"unknown model '{name_or_path}': use one of {known}, a local model directory, "
        "or a hub id such as facebook/DiT-XL-2-256"
    )


def _looks_local(name: str) -> bool:
    return name.startswith(("./", "../", "~", "/", ".\\")) or name in (".", "..")


def _read_config(config: Path) -> dict[str, Any]:
    """A model's config.json, or ModelLoadError naming what is wrong with it."""
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except OSError as err:
        raise ModelLoadError(f"cannot read {config} ({err.strerror}): check its permissions") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ModelLoadError(f"{config} is not valid JSON ({str(err).splitlines()[0][:120]}): "
                             "restore the model folder (diffusers' save_pretrained writes it)") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{config} is not a JSON object: restore the model folder")
    return data


def _entry_from_directory(path: Path) -> ModelEntry:
    for sub in ("transformer", "unet", None):
        config = path / sub / "config.json" if sub else path / "config.json"
        if config.is_file():
            cls = _read_config(config).get("_class_name", "")
            if cls not in _MODEL_CLASSES:
                raise ModelLoadError(
                    f"model class '{cls}' in {config} is not supported: edgediff handles "
                    f"{', '.join(_MODEL_CLASSES)}"
                )
            sched_dir = "scheduler" if (path / "scheduler").is_dir() else None
            return ModelEntry(path.name, cls, str(path), sub, sched_dir, f"local {cls}")
    raise ModelLoadError(
        f"no model found in '{path}': expected config.json in it or in its transformer/ or unet/ "
        "folder (a diffusers pipeline or model directory)"
    )


def load_model(name_or_path: str, device: str | torch.device = "cpu", **kwargs: Any) -> Any:
    """Load a model by registry name, directory or hub id with diffusers' `from_pretrained`."""
    entry = resolve(name_or_path)
    cls = _model_class(entry)
    if importlib.util.find_spec("accelerate") is None:
        kwargs.setdefault("low_cpu_mem_usage", False)  # the default asks for accelerate and warns
    try:
        model = cls.from_pretrained(entry.source, subfolder=entry.subfolder, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(entry, err)) from err
    return model.to(device).eval()


def load_model_on_meta(name_or_path: str) -> Any:
    """The model's architecture built from its config alone, on the `meta` device: no weights are
    read (a hub id fetches only config.json). Enough to write plans and count MACs."""
    entry = resolve(name_or_path)
    cls = _model_class(entry)
    try:
        config = cls.load_config(entry.source, subfolder=entry.subfolder)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(entry, err)) from err
    import torch

    with torch.device("meta"):
        return cls.from_config(config).eval()


@functools.cache
def shipped_classifier() -> Any:
    """The shipped digits classifier, loaded once per process (FID features, class accuracy)."""
    return load_model("digits-classifier")


def load_scheduler(name_or_path: str) -> Any:
    """The model's scheduler: a DDIMScheduler (edgediff samples DDPM-trained models with DDIM), or
    a FLUX model's own FlowMatchEulerDiscreteScheduler."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    entry = resolve(name_or_path)
    cls = FlowMatchEulerDiscreteScheduler if entry.is_flux else DDIMScheduler
    try:
        return cls.from_pretrained(entry.source, subfolder=entry.scheduler_subfolder)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_load_hint(entry, err)) from err


def _model_class(entry: ModelEntry) -> Any:
    if entry.model_class == "DigitsClassifier":
        from evaluators.zoo.classifier import DigitsClassifier

        return DigitsClassifier
    if not entry.model_class:
        raise ModelLoadError(
            f"'{entry.source}' is not in the registry: download it and pass the local directory, "
            f"or use one of {', '.join(REGISTRY)}"
        )
    import diffusers

    return getattr(diffusers, entry.model_class)


def _load_hint(entry: ModelEntry, err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if entry.shipped:
        return f"could not load shipped model '{entry.name}' from {entry.source}: {first}"
    return (
        f"could not load '{entry.source}' ({first}): if this machine cannot reach the model hub, "
        "download the repository where it can and pass the local directory instead"
    )
