"""Person locator: people on the floor map from ceiling depth cameras (docs/people.md)."""

from .appearance import APPEARANCE_LENGTH
from .config import LocatorConfig
from .frames import (
    ColorFrame,
    decode_color,
    decode_depth,
    DepthFrame,
    Detection,
    FrameRejectedError,
    LocatedSet,
)
from .health import OutageChange
from .locator import PersonLocator

__all__ = ['APPEARANCE_LENGTH', 'ColorFrame', 'decode_color', 'decode_depth', 'DepthFrame',
           'Detection', 'FrameRejectedError', 'LocatedSet', 'LocatorConfig', 'OutageChange',
           'PersonLocator']
