"""Read rosbag2 bags with rosbags: summaries, raw CDR records and decoded messages."""

from __future__ import annotations

from dataclasses import dataclass
import pathlib
from typing import Iterable, Iterator

from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore
import yaml

from .typestore import typestore


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: type, count and first/last receive times (ns)."""

    topic: str
    msgtype: str
    count: int
    first_ns: int
    last_ns: int
    latched: bool

    def rate_hz(self) -> float:
        """Mean message rate between the first and the last message (0 with < 2)."""
        if self.count < 2 or self.last_ns <= self.first_ns:
            return 0.0
        return (self.count - 1) / ((self.last_ns - self.first_ns) / 1e9)


@dataclass(frozen=True)
class RawRecord:
    """One stored message: topic, type, receive time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    stamp_ns: int
    data: bytes


def is_bag(path: str | pathlib.Path) -> bool:
    """Whether ``path`` is a rosbag2 folder (has metadata.yaml)."""
    return (pathlib.Path(path) / 'metadata.yaml').is_file()


def custom_data(path: str | pathlib.Path) -> dict[str, str]:
    """Return the custom_data of a bag's metadata.yaml ({} when there is none)."""
    meta = yaml.safe_load((pathlib.Path(path) / 'metadata.yaml').read_text())
    return dict(meta.get('rosbag2_bagfile_information', {}).get('custom_data') or {})


def _latched(connection) -> bool:
    profiles = getattr(connection.ext, 'offered_qos_profiles', []) or []
    return any(getattr(p, 'durability', None) is not None
               and getattr(p.durability, 'name', '') == 'TRANSIENT_LOCAL' for p in profiles)


def summarize(path: str | pathlib.Path) -> dict[str, TopicSummary]:
    """Topic summaries of a bag, from its messages (times are receive times)."""
    stats: dict[str, list[int]] = {}
    with Reader(pathlib.Path(path)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        latched = {c.topic: _latched(c) for c in reader.connections}
        for connection, stamp_ns, _ in reader.messages():
            entry = stats.setdefault(connection.topic, [0, stamp_ns, stamp_ns])
            entry[0] += 1
            entry[1] = min(entry[1], stamp_ns)
            entry[2] = max(entry[2], stamp_ns)
    return {topic: TopicSummary(topic, types[topic], *stats.get(topic, [0, 0, 0]),
                                latched=latched[topic]) for topic in types}


def raw_records(path: str | pathlib.Path, topics: Iterable[str] | None = None
                ) -> Iterator[RawRecord]:
    """Yield the bag's messages in receive-time order, undecoded."""
    wanted = set(topics) if topics is not None else None
    with Reader(pathlib.Path(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        for connection, stamp_ns, data in reader.messages(connections=connections):
            yield RawRecord(connection.topic, connection.msgtype, stamp_ns, bytes(data))


def bag_typestore(path: str | pathlib.Path) -> Typestore:
    """Return a type store that decodes ``path`` as it was written.

    A bag carries the definitions of its types (MCAP schemas). Where they differ from
    today's (a bag recorded before a field was added), they are used instead, so older
    output bags stay readable; fields a reader looks for must exist in both.
    """
    ours = typestore()
    written: dict = {}
    with Reader(pathlib.Path(path)) as reader:
        for connection in reader.connections:
            msgdef = getattr(connection, 'msgdef', None)
            if msgdef is None or not msgdef.data or msgdef.format.name != 'MSG':
                continue
            written.update(get_types_from_msg(msgdef.data, connection.msgtype))
    if all(ours.fielddefs.get(name) == definition for name, definition in written.items()):
        return ours
    store = get_typestore(Stores.EMPTY)
    store.register(written)
    store.register({name: definition for name, definition in ours.fielddefs.items()
                    if name not in written})
    return store


def messages(path: str | pathlib.Path, topics: Iterable[str] | None = None
             ) -> Iterator[tuple[str, int, object]]:
    """Yield (topic, receive time ns, decoded rosbags message) in receive-time order."""
    store = bag_typestore(path)
    for record in raw_records(path, topics):
        yield record.topic, record.stamp_ns, store.deserialize_cdr(record.data, record.msgtype)
