import json

import pytest
import torch
from diffusers import DiTTransformer2DModel, UNet2DModel

from evaluators.zoo import (
    REGISTRY,
    WEIGHTS_DIR,
    ModelLoadError,
    load_model,
    load_scheduler,
    resolve,
)


def test_registry_names_resolve_and_unknown_names_are_refused():
    assert resolve("digits-dit").kind == "dit"
    assert resolve("sd-1.5").model_class == "UNet2DConditionModel"
    with pytest.raises(ModelLoadError, match="unknown model 'no-such-model'.*use one of"):
        resolve("no-such-model")


def test_shipped_dit_has_256_tokens_and_a_null_class():
    model = load_model("digits-dit")
    assert isinstance(model, DiTTransformer2DModel)
    cfg = model.config
    assert (cfg.sample_size // cfg.patch_size) ** 2 == 256
    assert cfg.num_layers == 8
    # The null class is a real row of the label table (CFG needs it).
    table = model.transformer_blocks[0].norm1.emb.class_embedder.embedding_table
    assert table.num_embeddings == cfg.num_embeds_ada_norm + 1
    assert not model.training


def test_shipped_unet_has_at_least_three_skip_branches():
    model = load_model("digits-unet")
    assert isinstance(model, UNet2DModel)
    # Count the skip connections as diffusers builds them: conv_in, each resnet, each downsampler.
    skips = 1 + sum(
        len(b.resnets) + (len(b.downsamplers) if b.downsamplers else 0) for b in model.down_blocks
    )
    assert skips >= 3 and skips == 9
    x = torch.randn(2, 1, 16, 16)
    out = model(x, torch.tensor([10, 10]), class_labels=torch.tensor([3, 10])).sample
    assert out.shape == x.shape


def test_schedulers_load_as_ddim():
    for name in ("digits-dit", "digits-unet"):
        sched = load_scheduler(name)
        assert type(sched).__name__ == "DDIMScheduler"
        assert sched.config.num_train_timesteps == 1000


def test_weights_are_safetensors_and_small():
    files = [p for p in WEIGHTS_DIR.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    total = sum(p.stat().st_size for p in files)
    assert total < 20 * 2**20


def test_local_directory_loads_like_a_hub_repository(tmp_path):
    model = load_model("digits-unet")
    model.save_pretrained(tmp_path / "unet")
    entry = resolve(str(tmp_path))
    assert entry.model_class == "UNet2DModel" and entry.subfolder == "unet"
    again = load_model(str(tmp_path))
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_directories_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match="no model found.*config.json"):
        resolve(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UVit2DModel"}))
    with pytest.raises(ModelLoadError, match="not supported"):
        resolve(str(tmp_path))


def test_unreachable_hub_id_gives_a_clear_error():
    with pytest.raises(ModelLoadError, match="download the repository.*local directory"):
        load_model(REGISTRY["dit-xl-2-256"].name)
