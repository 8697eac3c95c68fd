"""Scenario files (``config/scenarios/*.yaml``): what a simulated run contains.

``load_scenario`` reads and validates one file into a frozen ``Scenario``; every problem
is a ``ScenarioError`` naming the file and the field, e.g.
``config/scenarios/busy.yaml: behaviours.hand_off: must be in [0, 1], got 1.5``.
Schema: docs/simulation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import pathlib
from typing import Any

import yaml

BEHAVIOURS = ('group_entry', 'return_same_bin', 'return_other_bin', 'hand_off',
              'shared_reach', 'tangled', 'restock', 'touch_no_pick', 'camera_outage',
              'tailgating')
"""The hard behaviours a scenario can switch on (``occlusion`` is always geometric)."""


class ScenarioError(ValueError):
    """A scenario file is missing something or contradicts itself."""


def _check_probability(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a probability."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name}: must be in [0, 1], got {value}')


@dataclass(frozen=True)
class RenderConfig:
    """What the bag holds: image scale and camera frame rate."""

    image_scale: float = 1.0
    camera_fps: float = 15.0

    def __post_init__(self) -> None:
        """Validate the config."""
        if not 0.0 < self.image_scale <= 1.0:
            raise ValueError(f'render.image_scale: must be in (0, 1], got {self.image_scale}')
        if not 0.0 < self.camera_fps <= 60.0:
            raise ValueError(f'render.camera_fps: must be in (0, 60], got {self.camera_fps}')


@dataclass(frozen=True)
class ShopperConfig:
    """Shoppers (accounts) over the run, their arrivals, lists and browsing stops."""

    count: int = 1
    arrival_rate_per_min: float = 2.0
    list_size: tuple[int, int] = (1, 4)
    dwell_s: tuple[float, float] = (2.0, 10.0)

    def __post_init__(self) -> None:
        """Validate the config."""
        if self.count < 0:
            raise ValueError(f'shoppers.count: must be >= 0, got {self.count}')
        if not self.arrival_rate_per_min > 0.0:
            raise ValueError('shoppers.arrival_rate_per_min: must be > 0, '
                             f'got {self.arrival_rate_per_min}')
        low, high = self.list_size
        if not 1 <= low <= high:
            raise ValueError(f'shoppers.list_size: need 1 <= min <= max, got {[low, high]}')
        low_s, high_s = self.dwell_s
        if not 0.0 <= low_s <= high_s:
            raise ValueError(f'shoppers.dwell_s: need 0 <= min <= max, got {[low_s, high_s]}')


@dataclass(frozen=True)
class AssociateConfig:
    """Store staff: enter by the staff gate, restock, never have a receipt."""

    count: int = 0
    uniform_rgb: tuple[int, int, int] = (30, 110, 70)    # the staff top, sRGB 0..255

    def __post_init__(self) -> None:
        """Validate the config."""
        if self.count < 0:
            raise ValueError(f'associates.count: must be >= 0, got {self.count}')
        if len(self.uniform_rgb) != 3 or not all(0 <= c <= 255 for c in self.uniform_rgb):
            raise ValueError('associates.uniform_rgb: must be three integers in 0..255, '
                             f'got {list(self.uniform_rgb)}')


@dataclass(frozen=True)
class BehaviourConfig:
    """Probabilities (and one rate) of the hard cases."""

    group_entry: float = 0.0
    return_same_bin: float = 0.0
    return_other_bin: float = 0.0
    hand_off: float = 0.0
    shared_reach: float = 0.0
    tangled: float = 0.0
    restock: float = 0.0
    touch_no_pick: float = 0.0
    camera_outage: float = 0.0      # per minute over the store: a camera out for a while
    tailgating: float = 0.0         # per scan: someone without an account walks in behind
    occlusion: bool = True

    def __post_init__(self) -> None:
        """Validate the config."""
        for name in BEHAVIOURS:
            value = getattr(self, name)
            if name == 'camera_outage':
                if not 0.0 <= value <= 60.0:
                    raise ValueError(f'behaviours.camera_outage: per minute, must be in '
                                     f'[0, 60], got {value}')
            elif name == 'restock':
                if not 0.0 <= value <= 60.0:
                    raise ValueError(f'behaviours.restock: per associate per minute, must be '
                                     f'in [0, 60], got {value}')
            else:
                _check_probability(f'behaviours.{name}', value)
        if self.return_same_bin + self.return_other_bin + self.hand_off > 1.0:
            raise ValueError('behaviours.return_same_bin + return_other_bin + hand_off: '
                             'per-pick probabilities must add up to <= 1')


@dataclass(frozen=True)
class EntryConfig:
    """The entry gate: when the QR scan arrives, how soon the next party walks in."""

    scan_delay_s: tuple[float, float] = (0.5, 3.0)
    party_gap_s: float = 2.5

    def __post_init__(self) -> None:
        """Validate the config."""
        low, high = self.scan_delay_s
        if not 0.0 <= low <= high <= 30.0:
            raise ValueError('entry.scan_delay_s: need 0 <= min <= max <= 30, '
                             f'got {[low, high]}')
        if not 0.0 <= self.party_gap_s <= 60.0:
            raise ValueError(f'entry.party_gap_s: must be in [0, 60], got {self.party_gap_s}')


@dataclass(frozen=True)
class SensorConfig:
    """Sensor imperfections: camera timing, frame drops, depth noise, load-cell noise."""

    camera_frame_drop: float = 0.0
    depth_noise_subpixel: float = 0.08
    load_cell_noise_g: float = 1.0
    load_cell_drift_g_per_min: float = 0.0
    load_cell_spike_rate_per_min: float = 0.0
    camera_drop_burst_frames: float = 3.0     # mean length of a burst of dropped frames
    camera_clock_offset_ms: float = 15.0      # each camera's clock off by up to +- this ...
    camera_clock_drift_ppm: float = 50.0      # ... drifting by up to +- this
    camera_latency_ms: float = 45.0           # capture to arrival, per camera 0.75-1.25 x ...
    camera_latency_jitter_ms: float = 5.0     # ... plus an exponential jitter of this mean
    camera_capture_phase: bool = True         # each camera on its own phase of the frame
    camera_outage_s: tuple[float, float] = (3.0, 8.0)   # length of a camera outage

    def __post_init__(self) -> None:
        """Validate the config."""
        if not 0.0 <= self.camera_frame_drop < 1.0:
            raise ValueError('sensors.camera_frame_drop: must be in [0, 1), '
                             f'got {self.camera_frame_drop}')
        if not 1.0 <= self.camera_drop_burst_frames <= 1000.0:
            raise ValueError('sensors.camera_drop_burst_frames: must be in [1, 1000], '
                             f'got {self.camera_drop_burst_frames}')
        if self.camera_frame_drop / (1.0 - self.camera_frame_drop) \
                > self.camera_drop_burst_frames:
            raise ValueError('sensors.camera_frame_drop: too high for '
                             'camera_drop_burst_frames (bursts could not be that rare)')
        for name in ('camera_clock_offset_ms', 'camera_clock_drift_ppm', 'camera_latency_ms',
                     'camera_latency_jitter_ms'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1e4:
                raise ValueError(f'sensors.{name}: must be in [0, 10000], got {value}')
        low, high = self.camera_outage_s
        if not 0.0 < low <= high <= 3600.0:
            raise ValueError('sensors.camera_outage_s: need 0 < min <= max <= 3600, '
                             f'got {[low, high]}')
        for name in ('depth_noise_subpixel', 'load_cell_noise_g',
                     'load_cell_drift_g_per_min', 'load_cell_spike_rate_per_min'):
            value = getattr(self, name)
            if not 0.0 <= value < 1e4:
                raise ValueError(f'sensors.{name}: must be >= 0 (and sane), got {value}')


@dataclass(frozen=True)
class Scenario:
    """One simulated run: the store, the people, their behaviours and the sensors.

    ``store_path`` is the store description (the ``store`` key), resolved relative to
    the scenario file. ``check_in_key_path`` is the demo signing key of check-in tokens
    ('' = the package's ``config/demo_keys/store_app_private.pem``).
    """

    name: str
    store_path: str
    duration_s: float
    seed: int
    render: RenderConfig = field(default_factory=RenderConfig)
    shoppers: ShopperConfig = field(default_factory=ShopperConfig)
    associates: AssociateConfig = field(default_factory=AssociateConfig)
    behaviours: BehaviourConfig = field(default_factory=BehaviourConfig)
    sensors: SensorConfig = field(default_factory=SensorConfig)
    entry: EntryConfig = field(default_factory=EntryConfig)
    start_offset_s: float = 0.0
    check_in_key_path: str = ''
    source_path: str = ''

    def __post_init__(self) -> None:
        """Validate the config."""
        if not self.name:
            raise ValueError('name: must be a non-empty string')
        if not self.store_path:
            raise ValueError('store: must name a store description file')
        if not 0.0 < self.duration_s <= 24 * 3600.0:
            raise ValueError(f'duration_s: must be in (0, 86400], got {self.duration_s}')
        if not 0 <= self.seed < 2 ** 63:
            raise ValueError(f'seed: must be a non-negative integer, got {self.seed}')
        if not 0.0 <= self.start_offset_s <= 10 * 365 * 86400.0:
            raise ValueError(f'start_offset_s: must be >= 0, got {self.start_offset_s}')

    @property
    def store(self) -> str:
        """The store description path (the YAML ``store`` key, resolved)."""
        return self.store_path

    @property
    def start_ns(self) -> int:
        """Stamp of the first tick: 1_700_000_000 s plus the scenario's offset."""
        return 1_700_000_000 * 10 ** 9 + int(round(self.start_offset_s * 1e9))


_SECTIONS: dict[str, type] = {
    'render': RenderConfig, 'shoppers': ShopperConfig, 'associates': AssociateConfig,
    'behaviours': BehaviourConfig, 'sensors': SensorConfig, 'entry': EntryConfig}
_TOP_KEYS = ('name', 'store', 'duration_s', 'seed', 'start_offset_s', 'check_in_key',
             *_SECTIONS)


def _number(value: Any, where: str, integer: bool = False) -> Any:
    """Return ``value`` as int or float, or raise ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{where}: must be a number, got {value!r}')
    if integer:
        if not isinstance(value, int):
            raise ValueError(f'{where}: must be an integer, got {value!r}')
        return int(value)
    if not math.isfinite(value):
        raise ValueError(f'{where}: must be finite, got {value!r}')
    return float(value)


def _section(kind: type, data: Any, where: str) -> Any:
    """Build one nested config from its YAML mapping (missing keys take defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f'{where}: must be a mapping, got {type(data).__name__}')
    defaults = kind()
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not hasattr(defaults, key):
            raise ValueError(f'{where}.{key}: unknown field; known: '
                             f'{", ".join(defaults.__dataclass_fields__)}')
        default = getattr(defaults, key)
        name = f'{where}.{key}'
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f'{name}: must be true or false, got {value!r}')
            values[key] = value
        elif isinstance(default, tuple) and len(default) == 3:
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError(f'{name}: must be a list of three numbers, got {value!r}')
            values[key] = tuple(_number(v, name, True) for v in value)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError(f'{name}: must be a list [min, max], got {value!r}')
            integer = isinstance(default[0], int)
            values[key] = tuple(_number(v, name, integer) for v in value)
        else:
            values[key] = _number(value, name, isinstance(default, int))
    return kind(**values)


def parse_scenario(data: Any, source: str = '<memory>',
                   base_dir: str | pathlib.Path = '.') -> Scenario:
    """Validate a parsed YAML document; relative paths resolve against ``base_dir``."""
    try:
        if not isinstance(data, dict):
            raise ValueError(f'must be a mapping, got {type(data).__name__}')
        for key in data:
            if key not in _TOP_KEYS:
                raise ValueError(f'{key}: unknown field; known: {", ".join(_TOP_KEYS)}')
        for key in ('name', 'store', 'duration_s', 'seed'):
            if key not in data:
                raise ValueError(f'{key}: missing required field')
        for key in ('name', 'store'):
            if not isinstance(data[key], str) or not data[key]:
                raise ValueError(f'{key}: must be a non-empty string, got {data[key]!r}')
        base = pathlib.Path(base_dir)
        store_path = str((base / data['store']).resolve())
        key_path = ''
        if data.get('check_in_key') is not None:
            if not isinstance(data['check_in_key'], str) or not data['check_in_key']:
                raise ValueError('check_in_key: must be a path, got '
                                 f'{data["check_in_key"]!r}')
            key_path = str((base / data['check_in_key']).resolve())
        sections = {key: _section(kind, data.get(key), key) for key, kind in _SECTIONS.items()}
        return Scenario(
            name=data['name'], store_path=store_path,
            duration_s=_number(data['duration_s'], 'duration_s'),
            seed=_number(data['seed'], 'seed', integer=True),
            start_offset_s=_number(data.get('start_offset_s', 0.0), 'start_offset_s'),
            check_in_key_path=key_path, source_path=source, **sections)
    except ScenarioError:
        raise
    except (ValueError, TypeError) as error:
        raise ScenarioError(f'{source}: {error}') from None


def load_scenario(path: str | pathlib.Path) -> Scenario:
    """Read and validate a scenario file (the ``store`` path is relative to it)."""
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f'{path}: scenario file not found') from None
    except yaml.YAMLError as error:
        raise ScenarioError(f'{path}: not valid YAML: {error}') from None
    return parse_scenario(data, str(path), path.parent)
