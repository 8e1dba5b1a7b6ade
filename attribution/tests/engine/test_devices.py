"""The gradient engine computes where the model lives: inputs, targets, masks and projection matrices all go to the
model's device (a CUDA attribution worker would fail otherwise). Tested with torch's "meta" device, which no CPU
tensor can meet by accident: any tensor left on the CPU makes these calls raise."""

from __future__ import annotations

import torch

from attribution.engine.gradient import _GradientProjector, trainable_blocks
from attribution.engine.projection import BlockProjector

META = torch.device("meta")


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def test_projections_of_every_kind_stay_on_the_gradients_device() -> None:
    blocks = [("small", (3, 4)), ("large", (64, 64))]
    grads = {name: torch.zeros(5, *shape, device=META) for name, shape in blocks}
    for kind in ("rademacher", "countsketch", "auto"):
        projector = BlockProjector(blocks, 8, seed=1, kind=kind, dense_limit=1000)
        assert projector(grads).device == META, kind
    cpu = BlockProjector(blocks, 8, seed=1, kind="auto", dense_limit=1000)
    out = cpu({name: torch.ones(2, *shape) for name, shape in blocks})
    assert out.device.type == "cpu" and out.shape == (2, 8)


def test_per_example_gradients_are_taken_on_the_models_device_from_cpu_inputs() -> None:
    model = torch.nn.Linear(4, 3, device=META)
    projector = BlockProjector(trainable_blocks(model), 6, seed=0, kind="rademacher")
    for per_example in ("vmap", "loop"):
        gp = _GradientProjector(model, loss_fn, projector, per_example)
        projected, finite = gp.on_device(torch.ones(5, 4), torch.zeros(5, dtype=torch.long))
        assert projected.device == META and finite.device == META and projected.shape == (5, 6), per_example
