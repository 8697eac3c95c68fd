"""Two-stage product classifier: the item class (catalog category), then the SKU in it.

Fitted at start-up from the reference images (``references.py``): every reference becomes
a feature vector (``features.item_feature``). A query's distance to a label is the mean
of its ``neighbours`` nearest references of that label, and labels get likelihoods by a
softmax of minus distance over ``temperature``: first over categories (stage one), then
over the SKUs of each category (stage two, which only has to tell the flavours of one
kind of item apart). A SKU's likelihood is P(category) x P(SKU | category). Where the
crop and a SKU's references are large enough, ORB local-feature matches add evidence in
stage two (print texture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from .config import ProductIdConfig
from .features import item_feature, LocalFeatures, OrbMatcher
from .references import ReferenceImage


@dataclass(frozen=True)
class Classification:
    """The answer for one crop: best category, its probability, SKU likelihoods."""

    category: str
    category_probability: float
    skus: tuple[tuple[str, float], ...]     # (SKU, likelihood), most likely first, sum <= 1

    @property
    def best_sku(self) -> str:
        """The most likely SKU ('' when there is none)."""
        return self.skus[0][0] if self.skus else ''


def _softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


class ProductClassifier:
    """Nearest-neighbour classifier over the references, category first, then SKU."""

    def __init__(self, references: Sequence[ReferenceImage], categories: Mapping[str, str],
                 config: ProductIdConfig) -> None:
        """Fit on ``references``; ``categories`` maps each SKU to its catalog category.

        Raises ValueError when there is no reference or a reference's SKU has no category.
        """
        if not references:
            raise ValueError('no reference image: nothing to recognise products by')
        missing = sorted({r.sku for r in references} - set(categories))
        if missing:
            raise ValueError(f'references of SKUs without a category: {", ".join(missing)}')
        self.config = config
        self.skus = tuple(sorted({r.sku for r in references}))
        self.categories = tuple(sorted({categories[s] for s in self.skus}))
        self.category_of = {s: categories[s] for s in self.skus}
        sku_index = {s: i for i, s in enumerate(self.skus)}
        self._labels = np.array([sku_index[r.sku] for r in references])
        self._features = np.stack([item_feature(r.rgb, r.mask) for r in references])
        self._orb = OrbMatcher(n_features=300)
        self._orb_references: dict[str, list[LocalFeatures]] = {}
        for reference in references:
            if min(reference.mask.shape) >= config.orb_min_size_px:
                found = self._orb.features(reference.rgb, reference.mask)
                if len(found.descriptors) >= 8:
                    self._orb_references.setdefault(reference.sku, []).append(found)

    def reference_count(self, sku: str) -> int:
        """How many references of a SKU the classifier was fitted on."""
        if sku not in self.skus:
            return 0
        return int(np.sum(self._labels == self.skus.index(sku)))

    def _label_distance(self, distances: NDArray[np.float64], members: NDArray[np.bool_]
                        ) -> float:
        nearest = np.sort(distances[members])[:self.config.neighbours]
        return float(nearest.mean())

    def classify(self, rgb: NDArray[np.uint8], mask: NDArray[np.bool_]) -> Classification:
        """Classify the masked pixels of an RGB crop (ValueError on an empty mask)."""
        return self.classify_views([(rgb, mask, 1.0)])

    def classify_views(self, views: Sequence[tuple[NDArray[np.uint8], NDArray[np.bool_], float]]
                       | Sequence[tuple[NDArray[np.uint8], NDArray[np.bool_], float,
                                        NDArray[np.float64] | None]]) -> Classification:
        """Classify one item seen in several crops: (rgb, mask, weight) each.

        The category and SKU likelihoods of the crops are averaged with the weights (a
        mixture: one crop that shows the item well is not vetoed by one that does not).
        """
        total = sum(view[2] for view in views)
        if not views or total <= 0.0:
            raise ValueError('classify_views needs at least one crop with a positive weight')
        p_category = np.zeros(len(self.categories))
        likelihoods: dict[str, float] = {}
        for view in views:
            rgb, mask, weight = view[0], view[1], view[2]
            pixel_weights = view[3] if len(view) > 3 else None
            p_cat, p_sku = self._likelihoods(rgb, mask, pixel_weights)
            p_category += weight / total * p_cat
            for sku, p in p_sku.items():
                likelihoods[sku] = likelihoods.get(sku, 0.0) + weight / total * p
        ranked = sorted(likelihoods.items(), key=lambda item: -item[1])[:self.config.max_skus]
        best = int(np.argmax(p_category))
        return Classification(self.categories[best], float(p_category[best]), tuple(ranked))

    def _likelihoods(self, rgb: NDArray[np.uint8], mask: NDArray[np.bool_],
                     pixel_weights: NDArray[np.float64] | None = None
                     ) -> tuple[NDArray[np.float64], dict[str, float]]:
        """Return P(category) (in self.categories order) and P(SKU) of one crop."""
        query = item_feature(rgb, mask, pixel_weights)
        distances = np.linalg.norm(self._features - query, axis=1)
        sku_distance = np.array([self._label_distance(distances, self._labels == i)
                                 for i in range(len(self.skus))])
        temperature = self.config.temperature
        # Stage one: the category, from its nearest references of any SKU.
        category_scores = []
        for category in self.categories:
            members = np.isin(self._labels, [i for i, s in enumerate(self.skus)
                                             if self.category_of[s] == category])
            category_scores.append(-self._label_distance(distances, members) / temperature)
        p_category = _softmax(np.array(category_scores))
        # Stage two: the SKU within each category (plus local features where they apply).
        orb_bonus = self._orb_bonus(rgb, mask)
        likelihoods: dict[str, float] = {}
        for c, category in enumerate(self.categories):
            indices = [i for i, s in enumerate(self.skus) if self.category_of[s] == category]
            scores = np.array([-sku_distance[i] / temperature
                               + orb_bonus.get(self.skus[i], 0.0) for i in indices])
            for i, p in zip(indices, _softmax(scores), strict=True):
                likelihoods[self.skus[i]] = float(p_category[c] * p)
        return p_category, likelihoods

    def _orb_bonus(self, rgb: NDArray[np.uint8], mask: NDArray[np.bool_]) -> dict[str, float]:
        """Return a log-likelihood bonus per SKU from ORB local features.

        Weight x the best share of a reference's ORB features matched (RANSAC inliers)
        in the crop; empty for small crops.
        """
        if not self._orb_references or min(mask.shape) < self.config.orb_min_size_px:
            return {}
        scene = self._orb.features(rgb, mask)
        if len(scene.descriptors) < 8:
            return {}
        bonus = {}
        for sku, features in self._orb_references.items():
            share = max(self._orb.match(f, scene).inliers / len(f.descriptors)
                        for f in features)
            bonus[sku] = self.config.orb_weight * share
        return bonus
