"""Association: who took what (shelf events + hands + products + tracks -> cart events).

Pure (no ROS). ``AssociationEngine`` (engine.py) with ``AssociationConfig`` and the input
and output values (values.py); ``bin_sites`` and ``catalog_of`` read the store description.
docs/shelf-to-cart.md, "Association and receipts".
"""

from __future__ import annotations

from ..store import StoreDescription
from .engine import AssociationEngine, CART_EVENT_PREFIX, HAND_OFF_PREFIX
from .values import (
    AssociationConfig,
    BinSite,
    CartEventOut,
    HAND_CARRIED,
    HAND_LEFT,
    HAND_NONE,
    HAND_RIGHT,
    InputRejectedError,
    PICK,
    ProductObservationIn,
    RETURN,
    ROLE_ASSOCIATE,
    ROLE_SHOPPER,
    ROLE_UNKNOWN,
    ShelfEventIn,
    SkeletonIn,
    SkuCandidate,
    TrackIn,
    UNKNOWN,
)


def bin_sites(description: StoreDescription) -> dict[str, BinSite]:
    """Every bin of the store with its front point in the map frame.

    The front point is the middle of the bin's front edge on the floor (shelf frame: y is
    into the shelf, so the front is the bin box's smallest y), where a shopper stands.
    """
    sites = {}
    for shelf in description.shelves:
        for bin_ in shelf.bins:
            centre = bin_.center_m()
            front = shelf.t_map_shelf.apply([float(centre[0]), float(bin_.min_m[1]), 0.0])
            sites[bin_.bin_id] = BinSite(bin_.bin_id, shelf.shelf_id, float(front[0]),
                                         float(front[1]), tuple(bin_.skus))
    return sites


def catalog_of(description: StoreDescription) -> dict[str, str]:
    """SKU -> category of the store's catalog."""
    return {sku: product.category for sku, product in description.catalog.items()}


__all__ = [
    'AssociationConfig', 'AssociationEngine', 'BinSite', 'CART_EVENT_PREFIX', 'CartEventOut',
    'HAND_CARRIED', 'HAND_LEFT', 'HAND_NONE', 'HAND_OFF_PREFIX', 'HAND_RIGHT',
    'InputRejectedError', 'PICK',
    'ProductObservationIn', 'RETURN', 'ROLE_ASSOCIATE', 'ROLE_SHOPPER', 'ROLE_UNKNOWN',
    'ShelfEventIn', 'SkeletonIn', 'SkuCandidate', 'TrackIn', 'UNKNOWN', 'bin_sites',
    'catalog_of',
]
