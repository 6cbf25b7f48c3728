"""Quality priors for models with no published standing: discovered local models, custom entries without ``quality``.

The untrained router weighs each model's ``quality`` prior against its price. A model with no prior used to
get a middling 0.7, so a free 1B local model looked nearly as good as a frontier one and won on price. Now an
unknown model's prior is estimated from what its name says about its size (``llama3.2:1b``, ``Qwen2.5-72B``,
``mixtral:8x7b``), and set low when the name says nothing; the entry is marked ``quality_estimated`` so the
router keeps it to prompts that look easy (``policies/predictors/prior.py``).

The ladder follows the catalog's own published-standing priors for open models of each size (Llama 3.1 8B
0.52, Llama 3.3 70B 0.70), rounded down: an estimate should never outrank a measured model of its size.
"""

from __future__ import annotations

import re

# (largest size in billions of parameters, prior) in ascending order; above the last: the last prior.
SIZE_LADDER: tuple[tuple[float, float], ...] = (
    (2.0, 0.40),
    (4.0, 0.46),
    (9.0, 0.52),
    (16.0, 0.58),
    (40.0, 0.64),
    (80.0, 0.68),
    (float("inf"), 0.72),
)
# No size in the name: assume small. Local servers mostly run small models, and guessing high is the failure
# that sent hard prompts to a 1B model.
UNKNOWN_SIZE_PRIOR = 0.40
# "8x7b" (experts x size), "70b", "1.5B", "27b-it"; not "a4b" (active parameters of an MoE) nor "v3b".
_SIZE = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)


def parameters_in_name(name: str) -> float | None:
    """The parameter count, in billions, that a model name states; the largest when it states several."""
    sizes = [float(m.group(2)) * (int(m.group(1)) if m.group(1) else 1) for m in _SIZE.finditer(name)]
    return max(sizes) if sizes else None


def estimated_prior(*names: str) -> tuple[float, str]:
    """``(prior, how it was estimated)`` from the first of ``names`` (id, upstream name) that states a size."""
    for name in names:
        size = parameters_in_name(name)
        if size is not None:
            prior = next(p for limit, p in SIZE_LADDER if size <= limit)
            return prior, f"estimated from the name: {size:g}B parameters"
    return UNKNOWN_SIZE_PRIOR, "estimated: no published standing and no size in the name, set low"
