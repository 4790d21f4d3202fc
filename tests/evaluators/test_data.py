import torch

from evaluators.data import IMAGE_SIZE, NUM_CLASSES, to_unit, train_test_split


def test_digits_are_upsampled_and_scaled(digits):
    assert digits.images.shape == (1797, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert digits.images.min() >= -1.0 and digits.images.max() <= 1.0
    assert digits.images.min() == -1.0  # background is black
    assert set(digits.labels.tolist()) == set(range(NUM_CLASSES))
    unit = to_unit(digits.images)
    assert unit.min() >= 0.0 and unit.max() <= 1.0


def test_split_is_stratified_disjoint_and_fixed(digits):
    train, test = train_test_split(digits)
    assert len(train) + len(test) == len(digits)
    for c in range(NUM_CLASSES):
        n_class = int((digits.labels == c).sum())
        n_test = int((test.labels == c).sum())
        assert abs(n_test - 0.2 * n_class) <= 1
    # No held-out image appears in the training split.
    flat_train = {tuple(x.flatten().tolist()) for x in train.images}
    assert not any(tuple(x.flatten().tolist()) in flat_train for x in test.images[:50])
    again_train, again_test = train_test_split(digits)
    assert torch.equal(again_test.images, test.images)
