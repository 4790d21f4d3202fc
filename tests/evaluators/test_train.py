"""Training runs end to end and writes loadable safetensors (a few iterations, not a real run)."""

import json

import torch

from evaluators.zoo import load_model, load_scheduler
from evaluators.zoo.train import train_classifier, train_generator


def test_generator_training_writes_a_loadable_model(tmp_path):
    record = train_generator("digits-unet", tmp_path, iterations=6, batch_size=8, save_every=0)
    assert record.iterations == 6 and record.final_loss > 0
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    model = load_model(str(tmp_path))
    assert load_scheduler(str(tmp_path)).config.num_train_timesteps == 1000
    saved = json.loads((tmp_path / "training.json").read_text())
    assert saved["seed"] == 0 and saved["iterations"] == 6
    out = model(torch.zeros(1, 1, 16, 16), torch.tensor([5]), class_labels=torch.tensor([10]))
    assert torch.isfinite(out.sample).all()


def test_training_is_deterministic_under_a_seed(tmp_path):
    for run in ("a", "b"):
        train_generator("digits-unet", tmp_path / run, iterations=3, batch_size=4, save_every=0)
    a, b = load_model(str(tmp_path / "a")), load_model(str(tmp_path / "b"))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_classifier_training_reports_held_out_accuracy(tmp_path):
    record = train_classifier(tmp_path, epochs=1)
    assert 0.0 <= record.extra["test_accuracy"] <= 1.0
    assert record.extra["test_images"] + record.train_images == 1797
    assert load_model(str(tmp_path)).config.feature_dim == 128


def test_every_shipped_generator_has_a_training_recipe():
    from evaluators.zoo import SHIPPED_GENERATORS
    from evaluators.zoo.train import GENERATORS

    assert set(GENERATORS) == set(SHIPPED_GENERATORS)


def test_flux_training_writes_a_loadable_pipeline_folder(tmp_path):
    from evaluators.subjects import DigitsFluxSubject, load_subject
    from evaluators.zoo.flux_pipeline import load_flux_pipeline

    record = train_generator("digits-flux", tmp_path, iterations=2, batch_size=4, save_every=0)
    assert record.extra["label_dropout"] > 0 and record.final_loss > 0
    for part in ("transformer", "text_encoder"):
        assert (tmp_path / part / "diffusion_pytorch_model.safetensors").is_file()
    pipe = load_flux_pipeline(str(tmp_path))
    assert pipe.text_encoder.tokens.shape[0] == 11  # ten digits and the null prompt
    gens = [torch.Generator().manual_seed(0)]
    images = pipe(class_labels=[3], num_inference_steps=2, generator=gens, output_type="pt").images
    assert images.shape == (1, 1, 16, 16) and torch.isfinite(images).all()
    assert isinstance(load_subject(str(tmp_path)), DigitsFluxSubject)
