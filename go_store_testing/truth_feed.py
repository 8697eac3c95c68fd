"""TEST HARNESS: the gate / cart_ledger input stream implied by a scenario's ground truth.

This is **not perception** and must never be used as (or in place of) a perception output
in an evaluation: it reads the simulator's truth (who checked in, who picked or returned
what, who left when) and writes what a perfect tracker and association *would* send. Its
only purpose is to drive the ledger nodes in tests and benchmarks (durability, restarts,
throughput, exit -> receipt latency) before the real tracker and association exist.
Every cart event id it makes starts with ``truth-feed-`` so that its output is
recognisable wherever it ends up.

From a ``Simulation`` run (``simulate_feed``) or a ``Truth`` plus the scanned tokens
(``build_feed``) it makes, in time order:

- ``FeedCheckIn``: each truth check-in with the simulator's real signed QR token;
- ``FeedTracks``: complete track snapshots (one track per person, track id = person id,
  pelvis position from the truth frames, associates flagged) at each check-in, with the
  party that just scanned standing in the entry zone (where each member was first seen),
  and around each exit (the person in the exit zone in their last truth frame, then gone
  in the next frame). A shopper counts as present from the scan of their party to their
  last truth frame; a snapshot says which accounts' visits should then hold all their
  tracks (``joined``) and which should have ended (``ended``);
- ``FeedCartEvent``: one per truth pick (+quantity) or return (-quantity) of a shopper,
  with a stable event id; the visit id is not known here (the gate makes it), the player
  takes it from the gate's answer for the event's account. Hand-offs move nothing
  between accounts (a party is one account) and restocks belong to no account: neither
  gives a cart event.

Pure: no ROS. The ROS side that publishes it is ``go_store_testing.ledger_node_bench``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
import pathlib
from typing import Iterable, Mapping, Optional, Sequence, Union

from go_store_nodes.core.sim.truth import Truth, TruthReceipt

EVENT_ID_PREFIX = 'truth-feed-'


@dataclass(frozen=True)
class FeedTrack:
    """One person in a track snapshot (map frame, metres)."""

    track_id: int
    x_m: float
    y_m: float
    associate: bool = False


@dataclass(frozen=True)
class FeedCheckIn:
    """A QR scan: the simulator's signed token, at the truth stamp."""

    stamp_ns: int
    gate_id: str
    token: str
    account_id: str
    track_ids: tuple[int, ...]


@dataclass(frozen=True)
class FeedTracks:
    """A complete snapshot of the live tracks, and what the gate should make of it."""

    stamp_ns: int
    tracks: tuple[FeedTrack, ...]
    joined: tuple[str, ...] = ()  # accounts whose visit holds all its tracks after this
    ended: tuple[str, ...] = ()  # accounts whose visit has ended after this


@dataclass(frozen=True)
class FeedCartEvent:
    """A pick (+) or return (-) of one shopper; the visit comes from the gate."""

    event_id: str
    stamp_ns: int
    account_id: str
    track_id: int
    sku: str
    quantity_delta: int


FeedItem = Union[FeedCheckIn, FeedTracks, FeedCartEvent]


@dataclass(frozen=True)
class ScannedToken:
    """A token the simulator produced for a check-in (``Tick.check_ins``)."""

    stamp_ns: int
    gate_id: str
    account_id: str
    token: str


@dataclass(frozen=True)
class TruthFeed:
    """The whole input stream of a run, in publishing order, and what should come out."""

    scenario: str
    seed: int
    items: tuple[FeedItem, ...]
    parties: Mapping[str, tuple[int, ...]]  # account -> track ids of its check-in
    receipts: Mapping[str, TruthReceipt] = field(default_factory=dict)

    @property
    def cart_events(self) -> tuple[FeedCartEvent, ...]:
        """Return the cart events in publishing order."""
        return tuple(item for item in self.items if isinstance(item, FeedCartEvent))

    @property
    def check_ins(self) -> tuple[FeedCheckIn, ...]:
        """Return the check-ins in publishing order."""
        return tuple(item for item in self.items if isinstance(item, FeedCheckIn))

    @property
    def ending_accounts(self) -> tuple[str, ...]:
        """Return the accounts whose visit ends within the feed, in order of exit."""
        return tuple(account for item in self.items if isinstance(item, FeedTracks)
                     for account in item.ended)


def cart_after(events: Iterable[FeedCartEvent]) -> dict[str, dict[str, int]]:
    """Return account -> SKU -> quantity (> 0 only) after applying ``events`` in order."""
    carts: dict[str, Counter[str]] = {}
    for event in events:
        carts.setdefault(event.account_id, Counter())[event.sku] += event.quantity_delta
    return {account: {sku: qty for sku, qty in sorted(cart.items()) if qty > 0}
            for account, cart in carts.items()}


class _Positions:
    """Where each person is in the truth frames, looked up by time."""

    def __init__(self, truth: Truth) -> None:
        self.stamps: dict[int, list[int]] = {}
        self.xy: dict[int, list[tuple[float, float]]] = {}
        for frame in truth.frames:
            for person in frame.people:
                self.stamps.setdefault(person.person_id, []).append(frame.stamp_ns)
                self.xy.setdefault(person.person_id, []).append((person.x_m, person.y_m))
        self.frame_stamps = [frame.stamp_ns for frame in truth.frames]

    def first(self, person_id: int) -> Optional[int]:
        stamps = self.stamps.get(person_id)
        return stamps[0] if stamps else None

    def last(self, person_id: int) -> Optional[int]:
        stamps = self.stamps.get(person_id)
        return stamps[-1] if stamps else None

    def at(self, person_id: int, stamp_ns: int) -> tuple[float, float]:
        """Position in the latest frame at or before ``stamp_ns`` (else the first one)."""
        index = bisect.bisect_right(self.stamps[person_id], stamp_ns) - 1
        return self.xy[person_id][max(index, 0)]

    def next_frame(self, stamp_ns: int, period_ns: int) -> int:
        index = bisect.bisect_right(self.frame_stamps, stamp_ns)
        return self.frame_stamps[index] if index < len(self.frame_stamps) \
            else stamp_ns + period_ns


def build_feed(truth: Truth, tokens: Sequence[ScannedToken]) -> TruthFeed:
    """Turn a run's truth and its scanned tokens into the gate / cart_ledger input stream."""
    by_scan = {(t.stamp_ns, t.gate_id, t.account_id): t.token for t in tokens}
    positions = _Positions(truth)
    roles = {person.person_id: person.role for person in truth.people}
    items: list[tuple[int, int, int, FeedItem]] = []  # (stamp, rank, order, item)
    # Who is present when: shoppers from their party's scan to their last truth frame.
    present_from: dict[int, int] = {}
    parties: dict[str, tuple[int, ...]] = {}
    snapshots: dict[int, tuple[list[str], list[str]]] = {}  # stamp -> (joined, ended)
    for order, check_in in enumerate(truth.check_ins):
        token = by_scan.get((check_in.stamp_ns, check_in.gate_id, check_in.account_id))
        if token is None:
            raise ValueError(f'no scanned token for the check-in of {check_in.account_id} '
                             f'at {check_in.stamp_ns}')
        members = tuple(p for p in check_in.person_ids if positions.first(p) is not None)
        if check_in.account_id in parties:
            raise ValueError(f'account {check_in.account_id} checks in twice')
        parties[check_in.account_id] = members
        for person_id in members:
            present_from[person_id] = check_in.stamp_ns
        items.append((check_in.stamp_ns, 0, order, FeedCheckIn(
            check_in.stamp_ns, check_in.gate_id, token, check_in.account_id, members)))
        snapshots.setdefault(check_in.stamp_ns, ([], []))[0].append(check_in.account_id)
    present_to: dict[int, int] = {}
    for person in truth.people:
        if person.role == 'associate':
            first = positions.first(person.person_id)
            if first is not None:
                present_from[person.person_id] = first
        last = positions.last(person.person_id)
        if person.exit_ns is not None and last is not None:
            present_to[person.person_id] = last
    for account_id, members in parties.items():
        if not members or any(p not in present_to for p in members):
            continue  # someone is still inside at the end: the visit does not end
        for person_id in members:
            snapshots.setdefault(present_to[person_id], ([], []))
            gone = positions.next_frame(present_to[person_id], truth.frame_period_ns)
            snapshots.setdefault(gone, ([], []))
        last_out = max(present_to[p] for p in members)
        gone = positions.next_frame(last_out, truth.frame_period_ns)
        snapshots[gone][1].append(account_id)
    for order, (stamp_ns, (joined, ended)) in enumerate(sorted(snapshots.items())):
        tracks = []
        for person_id in sorted(present_from):
            if present_from[person_id] > stamp_ns:
                continue
            if person_id in present_to and stamp_ns > present_to[person_id]:
                continue
            if roles.get(person_id) == 'associate' and \
                    stamp_ns > (positions.last(person_id) or 0):
                continue
            x_m, y_m = positions.at(person_id, stamp_ns)
            tracks.append(FeedTrack(person_id, x_m, y_m, roles.get(person_id) == 'associate'))
        items.append((stamp_ns, 1, order, FeedTracks(
            stamp_ns, tuple(tracks), tuple(joined), tuple(ended))))
    for order, event in enumerate(truth.events):
        if event.kind not in ('pick', 'return') or event.account_id is None:
            continue
        if event.account_id not in parties:
            raise ValueError(f'event {event.event_id}: account {event.account_id} never '
                             'checked in')
        delta = event.quantity if event.kind == 'pick' else -event.quantity
        items.append((event.stamp_ns, 2, order, FeedCartEvent(
            f'{EVENT_ID_PREFIX}{truth.scenario}-{truth.seed}-{event.event_id}', event.stamp_ns,
            event.account_id, event.person_id, event.sku, delta)))
    items.sort(key=lambda entry: entry[:3])
    return TruthFeed(truth.scenario, truth.seed, tuple(entry[3] for entry in items), parties,
                     {receipt.account_id: receipt for receipt in truth.receipts})


def simulate_feed(scenario_path: Union[str, pathlib.Path]) -> TruthFeed:
    """Run the simulator on a scenario file (no rendering) and build its feed."""
    from go_store_nodes.core.sim.scenario import load_scenario
    from go_store_nodes.core.sim.world import Simulation
    from go_store_nodes.core.store import load_store_description

    scenario = load_scenario(scenario_path)
    simulation = Simulation(scenario, load_store_description(scenario.store_path))
    tokens = [ScannedToken(tick.stamp_ns, data.gate_id, data.account_id, data.token)
              for tick in simulation.run() for data in tick.check_ins]
    return build_feed(simulation.truth, tokens)
