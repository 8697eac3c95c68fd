"""Multi-person tracker: detections -> stable identities (pure; docs/people.md)."""

from .config import TrackerConfig, Zone, zones_from_store
from .tracker import (
    Detection,
    Rejection,
    ROLE_ASSOCIATE,
    ROLE_SHOPPER,
    Track,
    Tracker,
    TrackerInputError,
)

__all__ = ['Detection', 'Rejection', 'ROLE_ASSOCIATE', 'ROLE_SHOPPER', 'Track', 'Tracker',
           'TrackerConfig', 'TrackerInputError', 'Zone', 'zones_from_store']
