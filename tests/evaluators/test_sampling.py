import pytest
import torch

from evaluators.sampling import SampleSpec, denoise, generate, null_class
from evaluators.zoo import load_model, load_scheduler

STEPS = 4


@pytest.fixture(scope="module", params=["digits-dit", "digits-unet"])
def shipped(request):
    return request.param, load_model(request.param), load_scheduler(request.param)


def test_null_class_is_the_extra_label(shipped):
    _, model, _ = shipped
    assert null_class(model) == 10


def test_same_seed_same_image_whatever_the_batch(shipped):
    _, model, sched = shipped
    labels = torch.tensor([1, 2, 3])
    batch = denoise(model, sched, labels, [7, 8, 9], STEPS, 3.0)
    alone = denoise(model, sched, labels[1:2], [8], STEPS, 3.0)
    again = denoise(model, sched, labels, [7, 8, 9], STEPS, 3.0)
    assert batch.shape == (3, 1, 16, 16)
    assert torch.equal(batch, again)
    torch.testing.assert_close(batch[1:2], alone, atol=1e-4, rtol=0)
    assert not torch.allclose(batch[0], batch[2])


def test_guidance_and_labels_change_the_image(shipped):
    _, model, sched = shipped
    labels = torch.tensor([4])
    guided = denoise(model, sched, labels, [0], STEPS, 3.0)
    plain = denoise(model, sched, labels, [0], STEPS, 1.0)
    other = denoise(model, sched, torch.tensor([7]), [0], STEPS, 3.0)
    assert not torch.allclose(guided, plain)
    assert not torch.allclose(guided, other)


def test_generate_cycles_classes_and_stays_in_range(shipped):
    _, model, sched = shipped
    spec = SampleSpec(num_images=12, num_inference_steps=STEPS, batch_size=5)
    images, labels = generate(model, sched, spec, progress=False)
    assert images.shape == (12, 1, 16, 16)
    assert labels.tolist() == [k % 10 for k in range(12)]
    assert images.min() >= -1.0 and images.max() <= 1.0


@pytest.mark.parametrize(
    "kwargs", [{"num_images": 0}, {"num_inference_steps": 0}, {"guidance_scale": 0.5}]
)
def test_spec_refuses_out_of_range_values(kwargs):
    with pytest.raises(ValueError):
        SampleSpec(**kwargs)
