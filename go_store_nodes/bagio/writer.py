"""Write rosbag2 MCAP bags (zstd chunk compression) with rosbags."""

from __future__ import annotations

import pathlib
from typing import Mapping

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from .topics import LATCHED_TOPICS

try:
    from compression import zstd
except ImportError:  # Python < 3.14: the backport rosbags uses too
    from backports import zstd  # type: ignore[no-redef]
from .typestore import typestore

_INFINITE = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)


def offered_qos(latched: bool) -> Qos:
    """QoS recorded for a topic: reliable, transient local when latched, else volatile."""
    return Qos(history=QosHistory.KEEP_LAST, depth=1 if latched else 100,
               reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL if latched
               else QosDurability.VOLATILE,
               deadline=_INFINITE, lifespan=_INFINITE,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
               avoid_ros_namespace_conventions=False)


class BagWriter:
    """A rosbag2 MCAP bag being written; use as a context manager.

    Connections are added on first use of a topic; ``write`` serialises a rosbags
    message object, ``write_raw`` stores CDR bytes as they are.
    """

    def __init__(self, path: str | pathlib.Path, compress: bool = True,
                 custom_data: Mapping[str, str] | None = None,
                 compression_level: int | None = None) -> None:
        """Prepare a new bag folder at ``path`` (it must not exist).

        ``compression_level`` (1-22) replaces zstd's default level (3) of the chunks.
        """
        if compression_level is not None and not 1 <= compression_level <= 22:
            raise ValueError(f'compression_level must be in 1..22, got {compression_level}')
        self.compression_level = compression_level if compress else None
        self.path = pathlib.Path(path)
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST,
                              storage_plugin=StoragePlugin.MCAP)
        if compress:
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._connections: dict[str, object] = {}
        self._types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._open = False

    def __enter__(self) -> BagWriter:
        """Open the bag."""
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close the bag (abort it when an exception is on its way)."""
        if exc_type is not None and self._open:
            self._writer.close()
            self._open = False
            return
        self.close()

    def open(self) -> None:
        """Create the bag folder and its storage file."""
        self._writer.open()
        self._open = True
        storage = self._writer.storage
        if self.compression_level is not None and getattr(storage, 'compression', '') == 'zstd':
            level = self.compression_level
            storage.compressor = lambda data: zstd.compress(data, level=level)  # type: ignore

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a key/value pair in the bag's metadata.yaml (custom_data)."""
        self._writer.set_custom_data(key, value)

    def add_topic(self, topic: str, msgtype: str, latched: bool | None = None) -> None:
        """Declare a topic and its type (``latched`` defaults to the known latched topics)."""
        if topic in self._connections:
            if self._types[topic] != msgtype:
                raise ValueError(f'{topic} is {self._types[topic]}, not {msgtype}')
            return
        if latched is None:
            latched = topic in LATCHED_TOPICS
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=typestore(), offered_qos_profiles=[offered_qos(latched)])
        self._types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, msgtype: str, stamp_ns: int, message: object) -> None:
        """Serialise and write one message received at ``stamp_ns``."""
        self.write_raw(topic, msgtype, stamp_ns,
                       typestore().serialize_cdr(message, msgtype))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview
                  ) -> None:
        """Write one CDR-serialised message received at ``stamp_ns``."""
        self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(stamp_ns), data)  # type: ignore
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the summary and metadata.yaml."""
        if self._open:
            self._writer.close()
            self._open = False


def prepare_output(out_dir: pathlib.Path, overwrite: bool) -> None:
    """Make room for a bag at ``out_dir``: it must not exist, or be replaceable."""
    if not out_dir.exists():
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
        return
    if not overwrite:
        raise FileExistsError(f'{out_dir} exists; choose another --out or pass --overwrite')
    if not (out_dir / 'metadata.yaml').is_file():
        raise FileExistsError(f'{out_dir} exists and is not a bag; not overwriting it')
    for child in sorted(out_dir.rglob('*'), key=lambda p: len(p.parts), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    out_dir.rmdir()
