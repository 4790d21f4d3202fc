"""Model cards for the shipped models, rendered from the files beside the weights."""

from __future__ import annotations

import json
from typing import Any

from evaluators.zoo import ModelEntry

_DATA = (
    "scikit-learn's `load_digits`: 1,797 handwritten digits, 8×8, intensities 0..16, upsampled "
    "bilinearly to 16×16 and scaled to [-1, 1] (`evaluators/data.py`)."
)

_SUMMARY = {
    "digits-dit": (
        "A class-conditional diffusion transformer (`diffusers.DiTTransformer2DModel`) in pixel space. "
        "Patch size 1 gives 256 tokens per image, so a 1-D attention window covers a small part of the "
        "sequence. Trained with label dropout; the null class is row 10 of the label table and "
        "classifier-free guidance puts the conditional half first."
    ),
    "digits-unet": (
        "A class-conditional U-Net (`diffusers.UNet2DModel`), a small cousin of DDPM CIFAR-10's: three "
        "levels (16, 8, 4 pixels), two resnets per level, attention at 8×8. Its nine skip connections "
        "(conv_in, then every resnet and downsampler) are DeepCache branches 0..8. Class 10 is the "
        "null class for classifier-free guidance."
    ),
    "digits-flux": (
        "A class-conditional FLUX-family transformer (`diffusers.FluxTransformer2DModel`): 2 "
        "dual-stream (MMDiT) blocks then 6 single-stream blocks, 4 heads of 16 channels, rotary "
        "positions over the image grid (ids (0, row, col)) and the prompt tokens (ids 0). The 16×16 "
        "image is its own latent (no VAE), packed into 2×2 patches as FLUX packs its latent: 64 image "
        "tokens of 4 channels beside 4 prompt tokens. Patch-1 pixels would give 256 tokens but four "
        "times the training cost; 64 is FLUX's own packing and still a grid on which a window or a "
        "per-token cache covers only part of the image. The \"text encoder\" is a learned table "
        "(`text_encoder/`, `DigitsPromptEncoder`): 4 tokens of 64 channels and a 64-wide pooled "
        "vector per digit, and a null prompt (row 10), trained with the transformer. Objective: "
        "rectified flow (velocity, logit-normal noise levels as in SD3 and FLUX) with 10% label "
        "dropout. Sampling: `FlowMatchEulerDiscreteScheduler` (shift 1) and real classifier-free "
        "guidance, FluxPipeline's `true_cfg_scale` with the null prompt as the negative prompt "
        "(`guidance_embeds=False`). FLUX-dev instead distils guidance into an input embedding; that "
        "needs a trained teacher and a second training run, and would leave no cond/uncond pair for "
        "the caches (`cache_context(\"cond\")` / `(\"uncond\")`) and CFG sharing a search acts on."
    ),
    "digits-classifier": (
        "A small CNN digits classifier. Its penultimate layer (128 features) is the FID feature space "
        "of the embedded default, in the role InceptionV3's pool features play for real images."
    ),
}


def _load_snippet(name: str, entry: ModelEntry) -> str:
    if entry.kind == "classifier":
        return (
            "from evaluators.zoo import load_model\n"
            f'classifier = load_model("{name}")  # DigitsClassifier.from_pretrained(<this folder>)'
        )
    if entry.is_flux:
        return (
            "from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel\n"
            "from evaluators.zoo.flux import DigitsPromptEncoder\n"
            "from evaluators.zoo.flux_pipeline import DigitsFluxPipeline\n"
            'transformer = FluxTransformer2DModel.from_pretrained(FOLDER, subfolder="transformer")\n'
            'text_encoder = DigitsPromptEncoder.from_pretrained(FOLDER, subfolder="text_encoder")\n'
            'scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(FOLDER, subfolder="scheduler")\n'
            "pipe = DigitsFluxPipeline(transformer, text_encoder, scheduler)\n"
            "images = pipe(class_labels=[3, 7], num_inference_steps=50, guidance_scale=1.5).images\n"
            f'# or: evaluators.zoo.flux_pipeline.load_flux_pipeline("{name}")'
        )
    cls = entry.model_class
    return (
        f"from diffusers import {cls}, DDIMScheduler\n"
        f'model = {cls}.from_pretrained(FOLDER, subfolder="{entry.subfolder}")\n'
        'scheduler = DDIMScheduler.from_pretrained(FOLDER, subfolder="scheduler")\n'
        f'# or: evaluators.zoo.load_model("{name}"), load_scheduler("{name}")'
    )


def _numbers(name: str, entry: ModelEntry, m: dict[str, Any]) -> list[str]:
    if name == "digits-classifier":
        return [
            f"| held-out accuracy | {m['test_accuracy']:.2%} on {m['test_images']} digits "
            "never seen in training (stratified 20% split, seed 0) |",
            f"| FID floor (real vs real) | {m['real_fid_floor']:.3f}: held-out split vs training "
            "split in this feature space |",
        ]
    sampler = "flow-matching Euler" if entry.is_flux else "DDIM"
    return [
        f"| FID (digits features) | {m['fid']:.3f}: {m['num_images']} samples vs all 1,797 real "
        "digits |",
        f"| samples classified as the requested digit | {m['class_accuracy']:.2%} |",
        f"| sampling | {sampler}, {m['num_inference_steps']} steps, guidance {m['guidance_scale']}, "
        f"seeds {m['seed']}..{m['seed'] + m['num_images'] - 1}, class k % 10 |",
        f"| CPU time per image | {m['seconds_per_image'] * 1000:.1f} ms (whole batch, this machine) |",
    ]


def render_card(
    name: str, entry: ModelEntry, config: dict[str, Any], training: dict[str, Any],
    metrics: dict[str, Any], size_kb: float,
) -> str:
    params = training["extra"].get("parameters")
    shown = {k: v for k, v in config.items() if not k.startswith("_")}
    lines = [
        f"# {name}",
        "",
        _SUMMARY[name],
        "",
        "## Load",
        "",
        "```python",
        _load_snippet(name, entry),
        "```",
        "",
        "## Numbers",
        "",
        "| measure | value |",
        "| --- | --- |",
        *_numbers(name, entry, metrics),
        "",
        f"Reproduce: `{metrics['command']}`",
        "",
        "## Training",
        "",
        f"- Data: {_DATA}",
        f"- Command: `{training['command']}`",
        f"- Seed {training['seed']}, {training['iterations']} iterations of batch "
        f"{training['batch_size']}, peak learning rate {training['learning_rate']}, "
        f"{training['train_images']} training images.",
        f"- Time: {training['seconds'] / 60:.1f} min on {training['torch_threads']} CPU thread(s); "
        f"final loss {training['final_loss']}.",
        *([f"- Note: {training['note']}"] if training.get("note") else []),
        f"- Parameters: {params:,}; weights {size_kb:.0f} KiB (safetensors).",
        f"- Details: {json.dumps(training['extra'])}",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(shown, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
