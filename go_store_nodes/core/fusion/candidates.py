"""Which SKUs x quantities explain a settled weight change, and what each bin holds (pure).

Each hypothesis (SKU s, quantity q) predicts |delta| = q x unit weight with a standard
deviation sqrt(q x (tolerance / tolerance_sigmas)^2 + measurement_std^2): units of a SKU
vary within the packer's tolerance independently. Its prior is the bin's: SKUs the bin
holds (planogram, plus misplaced units learnt from returns) share most of it, any other
catalog SKU a small share (larger for returns: items are put back on the wrong shelf),
and q units are ``quantity_decay`` times as likely as q - 1. One more hypothesis, "no
catalog explanation", has a flat density over ``unexplained_range_g``. The posteriors are
the likelihoods of the candidates; they sum to <= 1 (the rest is unexplained or cut off).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Mapping

from .config import FusionConfig, UnitWeight

# Misplaced units estimated below this are taken to be gone from the bin.
_MIN_UNITS = 0.05


@dataclass(frozen=True)
class SkuCandidate:
    """One explanation of a change: ``quantity`` units of ``sku`` with this probability."""

    sku: str
    quantity: int
    likelihood: float


@dataclass(frozen=True)
class Explanation:
    """Candidates of one change; ``explained`` is their total before cutting."""

    candidates: tuple[SkuCandidate, ...]
    explained: float
    outside_contents: float   # total likelihood of SKUs the bin was not known to hold


class BinContents:
    """What one bin is believed to hold: its planogram SKUs and misplaced units.

    Planogram SKUs each weigh 1 in the prior of SKUs in the bin; a misplaced SKU weighs
    ``misplaced_unit_prior`` per estimated unit. Returns whose weight only SKUs outside
    the contents explain add those SKUs (expected units = likelihood x quantity); picks
    of misplaced SKUs take them away again.
    """

    def __init__(self, planogram: tuple[str, ...], catalog: Mapping[str, UnitWeight],
                 config: FusionConfig) -> None:
        """Keep the catalogued planogram SKUs; no misplaced units yet."""
        self.config = config
        self.catalog = catalog
        self.planogram = tuple(s for s in planogram if s in catalog)
        self.misplaced: dict[str, float] = {}

    def skus(self) -> set[str]:
        """SKUs believed to be in the bin now."""
        return set(self.planogram) | set(self.misplaced)

    def fits(self, delta_g: float) -> bool:
        """Whether whole units of one SKU the bin holds explain a change (split_fit_sigmas)."""
        config = self.config
        magnitude = abs(delta_g)
        for sku in self.skus():
            unit = self.catalog[sku]
            unit_var = (unit.tolerance_g / config.tolerance_sigmas) ** 2
            q = max(1, min(config.max_quantity, round(magnitude / unit.unit_weight_g)))
            std = math.sqrt(q * unit_var + config.measurement_std_g ** 2)
            if abs(magnitude - q * unit.unit_weight_g) <= config.split_fit_sigmas * std:
                return True
        return False

    def _sku_priors(self, returning: bool) -> dict[str, float]:
        weights = {s: 1.0 for s in self.planogram}
        for sku, units in self.misplaced.items():
            weights[sku] = weights.get(sku, 0.0) + self.config.misplaced_unit_prior * units
        others = [s for s in self.catalog if s not in weights]
        foreign = self.config.foreign_return_prior if returning \
            else self.config.foreign_pick_prior
        if not weights:
            foreign = 1.0
        elif not others:
            foreign = 0.0
        total = sum(weights.values())
        priors = {s: (1.0 - foreign) * w / total for s, w in weights.items()}
        for sku in others:
            priors[sku] = foreign / len(others)
        return priors

    def explain(self, delta_g: float) -> Explanation:
        """Posterior of every (SKU, quantity) given a settled change of ``delta_g`` g."""
        config = self.config
        magnitude = abs(delta_g)
        priors = self._sku_priors(returning=delta_g > 0.0)
        inside = self.skus()
        quantities = range(1, config.max_quantity + 1)
        scores: list[tuple[float, str, int]] = []
        for sku, prior in priors.items():
            if prior <= 0.0:
                continue
            unit = self.catalog[sku]
            unit_var = (unit.tolerance_g / config.tolerance_sigmas) ** 2
            # Several units at once are the bin's own (restocks); misplaced ones come singly.
            decay = config.quantity_decay if sku in inside else config.foreign_quantity_decay
            norm_q = sum(decay ** (q - 1) for q in quantities)
            for q in quantities:
                std = math.sqrt(q * unit_var + config.measurement_std_g ** 2)
                z = (magnitude - q * unit.unit_weight_g) / std
                if abs(z) > 12.0:
                    continue
                density = math.exp(-0.5 * z * z) / (std * math.sqrt(2.0 * math.pi))
                prior_q = decay ** (q - 1) / norm_q
                scores.append(((1.0 - config.unexplained_prior) * prior * prior_q * density,
                               sku, q))
        unexplained = config.unexplained_prior / config.unexplained_range_g
        total = sum(s for s, _, _ in scores) + unexplained
        scores.sort(key=lambda item: (-item[0], item[1], item[2]))
        candidates = tuple(SkuCandidate(sku, q, score / total) for score, sku, q in scores
                           if score / total >= config.min_likelihood)[:config.max_candidates]
        explained = sum(s for s, _, _ in scores) / total
        outside = sum(s for s, sku, _ in scores if sku not in inside) / total
        return Explanation(candidates, explained, outside)

    def apply(self, delta_g: float, explanation: Explanation) -> list[str]:
        """Update the misplaced units after an event; return SKUs newly adopted."""
        inside = self.skus()
        adopted: list[str] = []
        if delta_g > 0.0:
            adopt = explanation.outside_contents >= self.config.adopt_min_likelihood
            for candidate in explanation.candidates:
                sku = candidate.sku
                units = candidate.likelihood * candidate.quantity
                if sku in self.planogram or (sku not in inside and (
                        not adopt or units < _MIN_UNITS)):
                    continue
                if sku not in inside:
                    adopted.append(sku)
                self.misplaced[sku] = self.misplaced.get(sku, 0.0) + units
        else:
            for candidate in explanation.candidates:
                if candidate.sku in self.misplaced:
                    left = self.misplaced[candidate.sku] \
                        - candidate.likelihood * candidate.quantity
                    if left < _MIN_UNITS:
                        del self.misplaced[candidate.sku]
                    else:
                        self.misplaced[candidate.sku] = left
        return adopted
