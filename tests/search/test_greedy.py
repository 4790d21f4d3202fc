"""The DiTFastAttn greedy search on the shipped digits DiT (and a tiny DiT pipeline): the rule checked
against an independent brute force, trials leaving the caches alone, and the boundary errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

from evaluators.plan import SHARES_CFG, WINDOW_METHODS, AttentionPlan, Plan, PlanError, full_plan
from evaluators.runtime import apply_plan, model_ref
from evaluators.runtime.attention import attention_runtime
from evaluators.subjects import PipelineSubject, load_subject
from search.greedy import (
    CANDIDATES,
    DEFAULT_DELTAS,
    calibration_inputs,
    default_window,
    greedy_plan,
    layer_thresholds,
)

N_CALIB = 2


@pytest.fixture(autouse=True)
def _one_thread():
    """These forwards are tiny: one thread is as fast, and does not stall when the cores are shared
    (two threads spin at every op's barrier, seen to slow a test 15x on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def subject():
    return load_subject("digits-dit")


def base_plan(subject, steps: int, guidance: float = 1.5) -> Plan:
    layers = len(subject.denoiser.transformer_blocks)
    return full_plan(model_ref(subject.denoiser, subject.name), steps, guidance, layers)


def search_and_capture(subject, base: Plan, delta: float, **kwargs) -> tuple[Plan, list[torch.Tensor]]:
    """The greedy plan and the images of its calibration generation."""
    images: list[torch.Tensor] = []
    generate = subject.generate_batch

    def capture(*args, **kw):
        images.append(generate(*args, **kw))
        return images[-1]

    subject.generate_batch = capture
    try:
        plan = greedy_plan(subject, base, delta, n_calib=N_CALIB, **kwargs)
    finally:
        del subject.generate_batch
    return plan, images


def test_constants_thresholds_and_window():
    assert DEFAULT_DELTAS == (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15)
    assert CANDIDATES == ("ast", "wars+asc", "wars", "full+asc")
    assert layer_thresholds(0.1, 4) == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert layer_thresholds(0.15, 8)[-1] == pytest.approx(0.15)
    assert default_window(1024) == 128 and default_window(256) == 32 and default_window(4) == 1


def test_docstring_describes_the_current_reference():
    import search.greedy as greedy

    doc = " ".join(greedy.__doc__.split())
    assert "`ast`, `wars+asc`, `wars`, `full+asc` (most to least compressed)" in doc
    assert "(l + 1) / L * delta" in doc and "first" in doc
    # the older reference: least-compressed first, the last pass kept, a similarity threshold
    assert "least to most" not in doc and "similarity" not in doc and "keeps the last" not in doc


def test_delta_zero_is_the_base_plan_without_a_generation(subject, monkeypatch):
    base = base_plan(subject, 6)
    monkeypatch.setattr(subject, "generate_batch", lambda *a, **k: pytest.fail("ran a generation"))
    plan = greedy_plan(subject, base, 0.0, n_calib=N_CALIB)
    assert plan.content_hash() == base.content_hash()
    assert plan.notes == {"search": "greedy", "delta": 0.0, "n_calib": N_CALIB, "seed": 3,
                          "window": 32, "thresholds": "(l+1)/L*delta"}


def test_plan_reproduces_its_calibration_generation(subject):
    """Applied and run normally, the plan gives the calibration generation's images: trials wrote
    no cache, and calibration mode cached what the plan's own run uses."""
    base = base_plan(subject, 8)
    plan, images = search_and_capture(subject, base, 0.15, progress=True)
    seeds, labels = calibration_inputs(subject, N_CALIB, 3)
    assert len(images) == 1
    again = subject.generate_batch(plan, seeds, labels)
    assert torch.allclose(again, images[0], rtol=0, atol=1e-6)
    assert not torch.allclose(subject.generate_batch(base, seeds, labels), images[0], atol=1e-3)
    methods = plan.attention.methods
    assert all(row[0] == "full" for row in methods)
    counts = Counter(m for row in methods for m in row)  # every kind of method is exercised
    assert counts["ast"] and counts.keys() & WINDOW_METHODS and counts.keys() & SHARES_CFG
    assert (plan.attention.window_left, plan.attention.window_right) == (32, 32)
    assert Plan.from_dict(plan.to_dict()) == plan  # a valid plan file
    assert plan.model == base.model and plan.sampling == base.sampling


def test_step_zero_is_full_at_every_delta(subject):
    base = base_plan(subject, 6)
    for delta in (0.025, 0.15):
        plan = greedy_plan(subject, base, delta, n_calib=N_CALIB)
        assert all(row[0] == "full" for row in plan.attention.methods)
        assert any(m != "full" for row in plan.attention.methods for m in row)
    # No monotonicity check: a looser delta need not compress more cells in this greedy.


def test_no_cfg_means_no_asc(subject):
    plan = greedy_plan(subject, base_plan(subject, 6, guidance=1.0), 0.15, n_calib=N_CALIB)
    methods = {m for row in plan.attention.methods for m in row}
    assert methods - {"full"} and not methods & SHARES_CFG


# --- the rule, checked by brute force --------------------------------------------------------------

class _Stop(Exception):
    pass


def output_at(subject, plan: Plan, step: int, seeds, labels) -> torch.Tensor:
    """The transformer's whole output at `step` of a normal generation under `plan`."""
    outputs: list[torch.Tensor] = []

    def keep(module, args, output):
        outputs.append(output.sample.clone())
        if len(outputs) > step:
            raise _Stop

    handle = subject.denoiser.register_forward_hook(keep)
    try:
        subject.generate_batch(plan, seeds, labels)
    except _Stop:
        pass
    finally:
        handle.remove()
    return outputs[step]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(((a - b) / (torch.maximum(a, b) + 1e-6)).abs().clamp(0, 10).mean())


def test_decisions_follow_the_greedy_rule(subject):
    """Every choice at (layer l, step t), recomputed from plain generations under the plan decided
    so far (steps < t as chosen, layers < l at step t as chosen, the rest full): the chosen method
    is below the threshold (l + 1) / L * delta and every more compressed candidate is not."""
    steps, delta = 4, 0.1
    base = base_plan(subject, steps)
    plan = greedy_plan(subject, base, delta, n_calib=N_CALIB)
    chosen = plan.attention.methods
    window = plan.notes["window"]
    layers = len(chosen)
    order = ["ast", "wars+asc", "wars", "full+asc", "full"]
    seeds, labels = calibration_inputs(subject, N_CALIB, 3)

    def table(step: int, column: list[str]) -> Plan:
        rows = tuple(tuple(row[:step]) + (column[i],) + ("full",) * (steps - step - 1)
                     for i, row in enumerate(chosen))
        return replace(base, attention=AttentionPlan(rows, window, window))

    margin = 1e-9  # the two routes may round differently
    checked = Counter()
    for t in range(1, steps):
        raw = output_at(subject, table(t, ["full"] * layers), t, seeds, labels)
        for layer in range(layers):
            threshold = (layer + 1) / layers * delta
            decided = [chosen[i][t] for i in range(layer)]
            method = chosen[layer][t]
            for candidate in order[: order.index(method) + 1]:
                if candidate == "full":
                    continue
                column = decided + [candidate] + ["full"] * (layers - layer - 1)
                loss = relative_error(raw, output_at(subject, table(t, column), t, seeds, labels))
                if candidate == method:
                    assert loss < threshold + margin, (layer, t, method, loss, threshold)
                else:
                    assert loss >= threshold - margin, (layer, t, candidate, loss, threshold)
            checked[method] += 1
    assert checked["full"] and sum(checked.values()) - checked["full"] >= 3, checked


# --- other subjects and bad inputs -----------------------------------------------------------------

def test_tiny_dit_pipeline():
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                out_channels=8, num_layers=3, sample_size=8, patch_size=2,
                                num_embeds_ada_norm=1000).eval()
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",)).eval()
    pipeline_subject = PipelineSubject("tiny-dit", DiTPipeline(dit, vae, DDIMScheduler()))
    base = full_plan(model_ref(dit, "tiny-dit"), 5, 4.0, 3)
    plan, images = search_and_capture(pipeline_subject, base, 0.15)
    assert plan.notes["window"] == 2  # 16 tokens
    assert all(row[0] == "full" for row in plan.attention.methods)
    seeds, labels = calibration_inputs(pipeline_subject, N_CALIB, 3)
    assert all(0 <= label < 1000 for label in labels)
    again = pipeline_subject.generate_batch(plan, seeds, labels)
    assert torch.allclose(again, images[0], rtol=0, atol=1e-6)


def test_calibration_labels_follow_the_reference(subject):
    seeds, labels = calibration_inputs(subject, 8, 3)
    expected = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(3)).tolist()
    assert seeds == list(range(3, 11)) and labels == expected


def test_bad_inputs_raise(subject):
    base = base_plan(subject, 4)
    with pytest.raises(PlanError, match="U-Net|UNet"):
        unet = load_subject("digits-unet")
        greedy_plan(unet, full_plan(model_ref(unet.denoiser, "digits-unet"), 4, 1.5), 0.1)
    with pytest.raises(PlanError, match="delta"):
        greedy_plan(subject, base, -0.1)
    with pytest.raises(PlanError, match="n_calib"):
        greedy_plan(subject, base, 0.1, n_calib=0)
    rows = tuple(("full", "ast", "full", "full") for _ in range(8))
    with pytest.raises(PlanError, match="uncompressed"):
        greedy_plan(subject, replace(base, attention=AttentionPlan(rows)), 0.1)


# --- calibration mode of the runtime ---------------------------------------------------------------

def test_calibration_mode_and_frozen_full_forward(subject):
    model = subject.denoiser
    assert attention_runtime(model) is None
    x, t = torch.randn(2, 1, 16, 16), torch.full((2,), 500)
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        expected = model(x, t, class_labels=labels).sample
    rows = tuple(("full", "full", "wars", "ast") for _ in range(8))
    with apply_plan(model, replace(base_plan(subject, 4), attention=AttentionPlan(rows))) as applied:
        rt = attention_runtime(model)
        assert rt is applied.technique
        assert not rt.needs_residual(0, 0) and not rt.needs_output(0, 0)
        rt.calibrating = True
        assert rt.needs_residual(0, 0) and rt.needs_output(0, 0) and rt.needs_output(0, 2)
        assert not rt.needs_residual(0, 2) and not rt.needs_output(0, 3)
        applied.state.manual = applied.state.frozen = True
        applied.state.set_step(1)
        with torch.no_grad():
            out = model(x, t, class_labels=labels).sample
        assert torch.equal(out, expected)  # the model's own processor
        assert all(p.cache.residual is None and p.cache.output is None for p in rt.processors)
    assert attention_runtime(model) is None
