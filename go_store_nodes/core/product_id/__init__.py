"""Product identification: which product (class, then flavour) from colour crops.

Pure: numpy and OpenCV only. ``ProductIdConfig`` (settings), ``item_feature`` and
``OrbMatcher`` (features), ``load_reference_folder`` (the catalog's reference images),
``ProductClassifier`` (category, then SKU), ``ProductIdentifier`` (frames and shelf
events in, ``Observation``s out). docs/shelf-to-cart.md, section Product ID.
"""

from .classifier import Classification, ProductClassifier
from .config import ProductIdConfig, SettingInfo
from .crops import bin_window, changed_mask, sees_bin_front, visible_share
from .features import item_feature, LocalFeatures, LocalMatch, OrbMatcher
from .hands import (
    HandPoint,
    HandRecord,
    skeleton_data,
    SkeletonData,
    SkeletonRejectedError,
)
from .identifier import (
    EventRejectedError,
    Observation,
    ProductIdentifier,
    ShelfEventData,
)
from .references import (
    load_reference_folder,
    read_reference_image,
    ReferenceImage,
    ReferenceProblem,
    write_reference_image,
)

__all__ = [
    'bin_window', 'changed_mask', 'Classification', 'EventRejectedError', 'HandPoint',
    'HandRecord', 'item_feature', 'skeleton_data', 'SkeletonData', 'SkeletonRejectedError',
    'load_reference_folder', 'LocalFeatures', 'LocalMatch', 'Observation', 'OrbMatcher',
    'ProductClassifier', 'ProductIdConfig', 'ProductIdentifier', 'read_reference_image',
    'ReferenceImage', 'ReferenceProblem', 'sees_bin_front', 'SettingInfo', 'ShelfEventData',
    'visible_share', 'write_reference_image',
]
