"""A shipped-model subject that counts the images it generates and can be made to fail."""

from __future__ import annotations

from evaluators.subjects import DigitsSubject


class CountingSubject(DigitsSubject):
    """`generated` counts images; `fail` fails every call, `fail_from_seed` calls with a seed at or
    above it (a device lost mid-evaluation)."""

    def __init__(self, *args, fail: bool = False, fail_from_seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.generated, self.fail, self.fail_from_seed = 0, fail, fail_from_seed

    def generate_batch(self, plan, seeds, conditions, on_step=None):
        if self.fail or (self.fail_from_seed is not None and max(seeds) >= self.fail_from_seed):
            raise RuntimeError("device lost")
        self.generated += len(seeds)
        return super().generate_batch(plan, seeds, conditions, on_step)
