"""`go-store replay`: the node graph, a bag player and a recorder in one executor.

Everything runs in one single-threaded executor driven from the playback loop, so
"as fast as possible" can mean "as fast as the graph keeps up": after each bag time
step the player waits until every reliable subscriber acknowledged what was
published and no callback is ready before it advances /clock again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
import os
import pathlib
import time
from typing import Any, Callable, Sequence

import rclpy
from rclpy.duration import Duration
from rclpy.executors import (
    ConditionReachedException,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
import yaml

from ..bagio.reader import is_bag
from ..bagio.topics import CUSTOM_REAL_TIME_FACTOR, CUSTOM_SOURCE_BAG, RECORDED_TOPICS
from ..bagio.writer import prepare_output
from ..core.graph import NodeSpec, store_graph
from ..core.store import load_store_description
from ..nodes.runner import start_nodes_in_process
from .player import BagPlayer
from .recorder import Recorder

OUTPUT_BAG = 'bag'
LEDGER_FILE = 'ledger.sqlite'
OUTBOX_FILE = 'association_outbox.sqlite'
MIN_TAIL_S = 2.0
DISCOVERY_RANGE = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
MAX_DOMAIN_ID = 232  # the highest DDS domain id whose ports fit (Linux)
REPORT_FILE = 'report.json'
# Listening this long finds the nodes of another graph on this machine (Fast DDS announces
# a participant at once and again within a second).
DOMAIN_LISTEN_S = 1.5
DOMAIN_PROBE_NODE = 'go_store_domain_probe'
_NS = 1_000_000_000


class DomainInUseError(RuntimeError):
    """The replay's DDS domain already has nodes of another graph on this machine."""


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: rate (None: as fast as the graph keeps up), tail and waits."""

    rate: float | None = 1.0
    tail_s: float | None = None    # bag seconds of /clock after the last message (None: auto)
    discovery_timeout_s: float = 5.0
    settle_timeout_s: float = 10.0
    clock_hz: float = 100.0
    # DDS domain of the replay (None: one picked from the process id). A replay talks to
    # its own nodes only: never to a live store graph, nor to another replay.
    domain_id: int | None = None

    def __post_init__(self) -> None:
        """Check the values."""
        if self.rate is not None and not self.rate > 0.0:
            raise ValueError(f'rate must be > 0, got {self.rate}')
        if (self.tail_s is not None and self.tail_s < 0.0) or self.clock_hz <= 0.0:
            raise ValueError('tail_s must be >= 0 and clock_hz > 0')


def drain(executor: SingleThreadedExecutor, timeout_s: float) -> int:
    """Run ready callbacks until none is ready; return how many ran."""
    ran = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            handler, _, _ = executor.wait_for_ready_callbacks(timeout_sec=0.0)
        except (TimeoutException, ShutdownException, ConditionReachedException):
            return ran
        handler()
        if handler.exception() is not None:
            raise handler.exception()
        ran += 1
    return ran


def replay_domain_id(requested: int | None, *, occupied: Callable[[int], list[str]]
                     | None = None) -> int:
    """Return the DDS domain of a replay: ``requested``, or a free one near the process id.

    Picked in [1, 100] and never the environment's ROS_DOMAIN_ID (the store's own graph).
    With ``occupied`` (domain -> names of the nodes already in it), a picked domain that
    has nodes in it is passed over, and a requested one is refused: two replays on one
    domain receive each other's messages, which spoils both runs without an error.
    """
    if requested is not None:
        if not 0 <= requested <= MAX_DOMAIN_ID:
            raise ValueError(f'domain_id must be in [0, {MAX_DOMAIN_ID}], got {requested}')
        others = occupied(requested) if occupied else []
        if others:
            raise DomainInUseError(
                f'DDS domain {requested} already has nodes on this machine '
                f'({", ".join(others[:5])}): another replay or a live graph; '
                'choose another --domain-id or leave it out')
        return requested
    live = os.environ.get('ROS_DOMAIN_ID', '0').strip()
    start = os.getpid() % 100
    busy = []
    for step in range(100):
        domain = 1 + (start + step) % 100
        if str(domain) == live:
            continue
        others = occupied(domain) if occupied else []
        if not others:
            return domain
        busy.append(f'{domain}: {others[0]}')
    raise DomainInUseError(f'every DDS domain in [1, 100] has nodes on this machine '
                       f'({"; ".join(busy[:3])}, ...); pass --domain-id')


def nodes_in_domain(domain_id: int, listen_s: float = DOMAIN_LISTEN_S) -> list[str]:
    """Names of the ROS nodes found in ``domain_id`` within ``listen_s`` of listening.

    Uses a context of its own (rclpy's default one stays untouched); discovery reaches as
    far as ROS_AUTOMATIC_DISCOVERY_RANGE says when it starts.
    """
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        node = rclpy.create_node(DOMAIN_PROBE_NODE, context=context, enable_rosout=False,
                                 start_parameter_services=False)
        try:
            deadline = time.monotonic() + listen_s
            while True:
                names = sorted(f'{ns.rstrip("/")}/{name}'
                               for name, ns in node.get_node_names_and_namespaces()
                               if name != DOMAIN_PROBE_NODE)
                if names or time.monotonic() >= deadline:
                    return names
                time.sleep(0.05)
        finally:
            node.destroy_node()
    finally:
        context.try_shutdown()


def settle(executor: SingleThreadedExecutor, nodes: list[Node], timeout_s: float) -> bool:
    """Wait for every publisher's acks and run callbacks until the graph is idle.

    Idle means every reliable subscriber acknowledged everything published and no callback
    is ready. A large image still in transit is not acknowledged yet, and nothing is
    ready for it: keep waiting, or the player moves on and it arrives after later frames.
    Return False when ``timeout_s`` ran out first (counted in the replay report).
    """
    deadline = time.monotonic() + timeout_s
    ack_timeout = Duration(nanoseconds=int(0.5 * _NS))
    while time.monotonic() < deadline:
        acked = True
        for node in nodes:
            for publisher in node.publishers:
                acked = publisher.wait_for_all_acked(ack_timeout) and acked
        ran = drain(executor, max(0.0, deadline - time.monotonic()))
        if acked and not ran:
            return True
    return False


def auto_tail_s(params_file: str, node_names: Sequence[str]) -> float:
    """Bag seconds to run on after the last message: the longest grace period + 5 s.

    Time-driven outputs (a receipt once a visit's ``grace_period_s`` has passed) happen
    only while /clock advances; at least ``MIN_TAIL_S``.
    """
    try:
        params = yaml.safe_load(pathlib.Path(params_file).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return MIN_TAIL_S
    longest = 0.0
    for name in node_names:
        values = (params.get(name) or {}).get('ros__parameters') or {}
        for key, value in values.items():
            if key.endswith('grace_period_s') and isinstance(value, (int, float)):
                longest = max(longest, float(value))
    return max(MIN_TAIL_S, longest + 5.0 if longest else 0.0)


def private_databases(specs: Sequence[NodeSpec], params_file: str,
                      folder: pathlib.Path) -> list[NodeSpec]:
    """Give nodes with a ``database_url`` parameter a fresh SQLite file in ``folder``.

    A replay must not see the ledger of an earlier run (a check-in token used before
    is refused as replayed), and must not touch the operator's database. A node with an
    ``http_port`` (the operator page) gets port 0: a free one, logged at start.
    """
    try:
        params = yaml.safe_load(pathlib.Path(params_file).read_text()) or {}
    except (OSError, yaml.YAMLError):
        params = {}
    database = folder / LEDGER_FILE
    if database.exists():
        database.unlink()
    # The association's outbox too: an earlier run's event ids would read as repeats.
    outbox = folder / OUTBOX_FILE
    for stale in folder.glob(f'{OUTBOX_FILE}*'):
        stale.unlink()
    result = []
    for spec in specs:
        values = (params.get(spec.name) or {}).get('ros__parameters') or {}
        if 'database_url' in values:
            spec = dataclasses.replace(spec, parameters={
                **spec.parameters, 'database_url': f'sqlite:///{database.resolve()}'})
        if 'outbox_path' in values:
            spec = dataclasses.replace(spec, parameters={
                **spec.parameters, 'outbox_path': str(outbox.resolve())})
        # A web page of a replay listens on a free port (logged), never the store's own.
        if 'http_port' in values:
            spec = dataclasses.replace(spec, parameters={**spec.parameters, 'http_port': 0})
        result.append(spec)
    return result


def _restore(variable: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value


def _spin_for(executor: SingleThreadedExecutor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        executor.spin_once(timeout_sec=left)


def replay(bag: str | pathlib.Path, out_dir: str | pathlib.Path, *,
           options: ReplayOptions = ReplayOptions(), store_path: str, params_file: str,
           report_path: str | pathlib.Path | None = None, overwrite: bool = False,
           only_nodes: Sequence[str] = (),
           progress: Callable[[float, float], None] | None = None) -> dict[str, Any]:
    """Play ``bag`` through the store's node graph and record its outputs.

    Writes ``out_dir/bag`` (the outputs, MCAP) and the replay report (JSON) and
    returns the report. ``only_nodes`` (node names) restricts the graph. rclpy must
    not be initialised yet.
    """
    bag = pathlib.Path(bag)
    if not is_bag(bag):
        raise FileNotFoundError(f'{bag} is not a rosbag2 folder (no metadata.yaml)')
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    output_bag = out / OUTPUT_BAG
    prepare_output(output_bag, overwrite)
    specs = [s for s in store_graph(load_store_description(store_path), store_path,
                                    with_cameras=False) if not s.hardware_only]
    unknown = set(only_nodes) - {s.name for s in specs}
    if unknown:
        raise ValueError(f'unknown node(s) {", ".join(sorted(unknown))}; the graph has '
                         f'{", ".join(s.name for s in specs)}')
    if only_nodes:
        specs = [s for s in specs if s.name in set(only_nodes)]
    specs = private_databases(specs, params_file, out)
    tail_s = options.tail_s if options.tail_s is not None else auto_tail_s(
        params_file, [s.name for s in specs])
    # Discovery stays on this machine (read by the middleware when rclpy starts).
    saved_range = os.environ.get(DISCOVERY_RANGE)
    os.environ[DISCOVERY_RANGE] = 'LOCALHOST'
    try:
        domain_id = replay_domain_id(options.domain_id, occupied=nodes_in_domain)
    except DomainInUseError:
        _restore(DISCOVERY_RANGE, saved_range)
        raise
    rclpy.init(domain_id=domain_id)
    nodes: list[Node] = []
    recorder = None
    executor = SingleThreadedExecutor()
    try:
        player_node = rclpy.create_node('go_store_player')
        nodes.append(player_node)
        player = BagPlayer(player_node, bag)
        player.publish_clock(player.first_ns)
        nodes.extend(start_nodes_in_process(specs, params_file, use_sim_time=True))
        recorder_node = rclpy.create_node(
            'go_store_recorder', parameter_overrides=[Parameter('use_sim_time', value=True)])
        nodes.append(recorder_node)
        recorder = Recorder(recorder_node, output_bag, fallback_ns=lambda: player.now_ns)
        for node in nodes:
            executor.add_node(node)
        player.wait_for_subscribers(options.discovery_timeout_s,
                                    lambda t: executor.spin_once(timeout_sec=t))
        _spin_for(executor, 0.2)
        player.publish_clock(player.first_ns)

        def wait(timeout_s: float) -> None:
            executor.spin_once(timeout_sec=timeout_s)

        settle_timeouts = 0

        def graph_settle() -> None:
            nonlocal settle_timeouts
            if not settle(executor, nodes, options.settle_timeout_s):
                settle_timeouts += 1

        stats = player.play(options.rate, wait, graph_settle, options.clock_hz, progress)
        # Let time-driven outputs (receipts after an exit, timeouts) happen: no input
        # is played any more, so /clock runs on as fast as the graph keeps up.
        graph_settle()
        step_ns = int(0.1 * _NS)
        tail_end = player.now_ns + int(tail_s * _NS)
        tail_wall = time.monotonic()
        while player.now_ns < tail_end:
            player.publish_clock(min(player.now_ns + step_ns, tail_end))
            graph_settle()
        tail_wall = time.monotonic() - tail_wall
        clocks = {node.get_fully_qualified_name(): node.get_clock().now().nanoseconds
                  for node in nodes}
        end_clock_ns = player.now_ns
        rtf = stats.real_time_factor
        recorded = recorder.counts
        recorder.close({CUSTOM_REAL_TIME_FACTOR: f'{rtf:.6g}', CUSTOM_SOURCE_BAG: str(bag)})
        recorder = None
    finally:
        if recorder is not None:
            recorder.close()
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        _restore(DISCOVERY_RANGE, saved_range)
    report = {
        'format': 1, 'bag': str(bag), 'output_bag': str(output_bag),
        'mode': 'as_fast_as_possible' if options.rate is None else 'rate',
        'rate': options.rate, 'sim_s': stats.sim_s, 'wall_s': stats.wall_s,
        'real_time_factor': rtf, 'published': stats.published,
        'clock_messages': stats.clock_messages, 'recorded': recorded,
        'first_ns': stats.first_ns, 'last_ns': stats.last_ns, 'end_clock_ns': end_clock_ns,
        'tail_s': tail_s, 'tail_wall_s': tail_wall,
        # Playback steps after which the graph was not idle within settle_timeout_s: the
        # player went on without it (as fast as possible only; 0 in a sound run).
        'settle_timeouts': settle_timeouts, 'domain_id': domain_id,
        'ledger_database': str(out / LEDGER_FILE),
        'node_clocks_ns': clocks,
        'nodes': [s.full_name for s in specs], 'output_topics': sorted(RECORDED_TOPICS),
    }
    path = pathlib.Path(report_path) if report_path else out / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + '\n')
    report['report_path'] = str(path)
    return report
