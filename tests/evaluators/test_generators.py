"""The shipped generators make the digits they are asked for (the model cards hold the full run)."""

import json
from pathlib import Path

import pytest
import torch

from evaluators.quality import digits_fid_scorer
from evaluators.sampling import SampleSpec
from evaluators.zoo import REGISTRY, SHIPPED, SHIPPED_GENERATORS
from evaluators.zoo.report import measure_generator


@pytest.fixture(scope="module")
def scorer(classifier):
    return digits_fid_scorer(classifier)


@pytest.mark.parametrize("name", SHIPPED_GENERATORS)
def test_samples_are_the_requested_digits(name, classifier, scorer):
    spec = SampleSpec(num_images=100, num_inference_steps=25, seed=1000)
    quality, images = measure_generator(name, spec, scorer, classifier, progress=False)
    assert images.shape == (100, 1, 16, 16)
    assert quality.class_accuracy >= 0.9
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    assert quality.fid < scorer.score(noise) / 10  # far from what an untrained model gives


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED_GENERATORS)
def test_model_card_numbers_reproduce(name, classifier, scorer):
    card = _card(name)
    spec = SampleSpec(
        num_images=card["num_images"], num_inference_steps=card["num_inference_steps"],
        guidance_scale=card["guidance_scale"], seed=card["seed"],
    )
    quality, _ = measure_generator(name, spec, scorer, classifier, progress=False)
    assert quality.class_accuracy >= 0.9
    assert quality.class_accuracy == pytest.approx(card["class_accuracy"], abs=0.01)
    assert quality.fid == pytest.approx(card["fid"], rel=0.05)


def test_model_cards_hold_the_measured_numbers():
    for name in SHIPPED:
        folder = Path(REGISTRY[name].source)
        metrics = json.loads((folder / "metrics.json").read_text())
        card = (folder / "README.md").read_text()
        assert metrics["command"].startswith("edgediff ") and metrics["command"] in card
        if name == "digits-classifier":
            assert metrics["test_accuracy"] >= 0.97
            assert f"{metrics['test_accuracy']:.2%}" in card
        else:
            assert metrics["num_images"] == 1000 and metrics["class_accuracy"] >= 0.9
            assert f"{metrics['fid']:.3f}" in card and f"{metrics['class_accuracy']:.2%}" in card
        training = json.loads((folder / "training.json").read_text())
        assert training["command"] in card


def _card(name: str) -> dict:
    return json.loads((Path(REGISTRY[name].source) / "metrics.json").read_text())
