import pytest
import torch

from evaluators.data import to_unit
from evaluators.quality import FIDScorer
from evaluators.zoo.classifier import DigitsFeatures


@pytest.fixture(scope="module")
def scorer(classifier, digits):
    return FIDScorer(DigitsFeatures(classifier), to_unit(digits.images[:900]))


def test_real_digits_score_far_better_than_noise(scorer, digits):
    real = scorer.score(to_unit(digits.images[900:]))
    noise = scorer.score(torch.rand(400, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert 0 <= real < noise / 10


def test_score_keeps_the_reference_between_calls(scorer, digits):
    images = to_unit(digits.images[1000:1300])
    assert scorer.score(images) == pytest.approx(scorer.score(images), rel=1e-6)


def test_wrong_digits_score_worse_than_right_ones(scorer, digits):
    ones = to_unit(digits.images[900:][digits.labels[900:] == 1])
    mixed = to_unit(digits.images[900 : 900 + len(ones)])
    assert scorer.score(mixed) < scorer.score(ones)


def test_fid_needs_two_images(scorer):
    with pytest.raises(ValueError, match="at least 2"):
        scorer.score(torch.rand(1, 1, 16, 16))
