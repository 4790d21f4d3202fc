import torch

from evaluators.data import to_unit, train_test_split
from evaluators.zoo.classifier import DigitsClassifier, DigitsFeatures


def test_held_out_accuracy_is_at_least_97_percent(classifier, digits):
    _, test = train_test_split(digits)
    assert classifier.accuracy(test.images, test.labels) >= 0.97


def test_features_accept_grey_rgb_and_other_sizes(classifier, digits):
    feature = DigitsFeatures(classifier)
    unit = to_unit(digits.images[:8])
    grey = feature(unit)
    assert grey.shape == (8, feature.num_features) == (8, 128)
    rgb = feature(unit.repeat(1, 3, 1, 1))
    torch.testing.assert_close(grey, rgb)
    big = feature(torch.nn.functional.interpolate(unit, size=(32, 32), mode="bilinear"))
    assert big.shape == grey.shape


def test_save_and_load_round_trip(classifier, tmp_path):
    classifier.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    again = DigitsClassifier.from_pretrained(tmp_path)
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(classifier.eval()(x), again.eval()(x))
