"""Store view for rviz2 and Foxglove: marker descriptions built from the graph's outputs.

Pure: plain dataclasses in (tracks, stick figures, shelf events, cart events, visits) and
out (``Marker``, ``MarkerSet``); the visualization node converts them to and from
messages. docs/viewing.md shows what is drawn and how to look at it.
"""

from .config import VisualizationConfig, VisualizationSetting
from .markers import Marker, MarkerAction, MarkerKind, MarkerSet
from .scene import (
    CartEventIn,
    EVENT_KINDS,
    NAMESPACES,
    NS_BINS,
    NS_BINS_TOUCHED,
    NS_CART_EVENTS,
    NS_FLOOR,
    NS_GATES,
    NS_HANDS_IN_BINS,
    NS_JOINTS,
    NS_PEOPLE,
    NS_PEOPLE_LABELS,
    NS_SHELF_EVENTS,
    NS_SHELVES,
    NS_SKELETONS,
    NS_TRAILS,
    PERSON_NAMESPACES,
    ROLES,
    ShelfEventIn,
    SkeletonIn,
    STORE_NAMESPACES,
    StoreView,
    TrackIn,
    VisitIn,
    VisualizationInputError,
)

__all__ = ['CartEventIn', 'EVENT_KINDS', 'Marker', 'MarkerAction', 'MarkerKind', 'MarkerSet',
           'NAMESPACES', 'NS_BINS', 'NS_BINS_TOUCHED', 'NS_CART_EVENTS', 'NS_FLOOR', 'NS_GATES',
           'NS_HANDS_IN_BINS', 'NS_JOINTS', 'NS_PEOPLE', 'NS_PEOPLE_LABELS', 'NS_SHELF_EVENTS',
           'NS_SHELVES', 'NS_SKELETONS', 'NS_TRAILS', 'PERSON_NAMESPACES', 'ROLES',
           'ShelfEventIn', 'SkeletonIn', 'STORE_NAMESPACES', 'StoreView', 'TrackIn', 'VisitIn',
           'VisualizationConfig', 'VisualizationInputError', 'VisualizationSetting']
