"""Scenario files: the tiers load, paths resolve, every mistake names the file and field."""

import pathlib

import pytest
import yaml

from go_store_nodes.core.sim.scenario import (
    BEHAVIOURS,
    load_scenario,
    parse_scenario,
    Scenario,
    ScenarioError,
)

TIERS = {'smoke': 1, 'easy': 3, 'busy': 10, 'crowd': 20, 'rush': 50}


def _minimal(**overrides):
    data = {'name': 'mini', 'store': '../store.yaml', 'duration_s': 10.0, 'seed': 7}
    data.update(overrides)
    return data


@pytest.mark.parametrize('tier', sorted(TIERS))
def test_tier_files_load(repo, tier):
    scenario = load_scenario(repo / 'config' / 'scenarios' / f'{tier}.yaml')
    assert scenario.name == tier
    assert scenario.shoppers.count == TIERS[tier]
    assert pathlib.Path(scenario.store_path).is_file()
    assert scenario.store == scenario.store_path
    assert scenario.render.image_scale == 1.0 and scenario.render.camera_fps == 15.0
    assert scenario.start_ns == 1_700_000_000 * 10 ** 9


def test_smoke_is_simple_and_busy_has_every_behaviour(repo):
    smoke = load_scenario(repo / 'config' / 'scenarios' / 'smoke.yaml')
    assert (smoke.duration_s, smoke.seed) == (60.0, 1)
    assert all(getattr(smoke.behaviours, name) == 0.0 for name in BEHAVIOURS)
    busy = load_scenario(repo / 'config' / 'scenarios' / 'busy.yaml')
    assert all(getattr(busy.behaviours, name) > 0.0 for name in BEHAVIOURS)
    assert busy.associates.count in (1, 2)
    assert busy.sensors.camera_frame_drop > 0.0
    assert busy.sensors.load_cell_drift_g_per_min > 0.0
    assert busy.sensors.load_cell_spike_rate_per_min > 0.0


def test_store_path_is_relative_to_the_scenario_file(tmp_path):
    folder = tmp_path / 'a' / 'b'
    folder.mkdir(parents=True)
    path = folder / 'mine.yaml'
    path.write_text(yaml.safe_dump(_minimal(store='../store.yaml')))
    scenario = load_scenario(path)
    assert scenario.store_path == str((tmp_path / 'a' / 'store.yaml').resolve())
    assert scenario.source_path == str(path)


def test_defaults_fill_missing_sections():
    scenario = parse_scenario(_minimal(), 'mini.yaml')
    assert isinstance(scenario, Scenario)
    assert scenario.shoppers.list_size == (1, 4)
    assert scenario.behaviours.occlusion is True
    assert scenario.sensors.depth_noise_subpixel == 0.08
    assert len(scenario.associates.uniform_rgb) == 3
    staff = parse_scenario(_minimal(associates={'uniform_rgb': [200, 20, 10]}), 'mini.yaml')
    assert staff.associates.uniform_rgb == (200, 20, 10)
    assert scenario.entry.scan_delay_s == (0.5, 3.0)
    assert scenario.behaviours.tailgating == 0.0


def test_entry_scan_delay_is_read():
    scenario = parse_scenario(_minimal(entry={'scan_delay_s': [1, 2.5]},
                                       behaviours={'tailgating': 0.25}), 'mini.yaml')
    assert scenario.entry.scan_delay_s == (1.0, 2.5)
    assert scenario.behaviours.tailgating == 0.25


@pytest.mark.parametrize('change, field', [
    ({'seed': None}, 'seed'),
    ({'duration_s': -1.0}, 'duration_s'),
    ({'duration_s': 'long'}, 'duration_s'),
    ({'name': ''}, 'name'),
    ({'colour': 'red'}, 'colour'),
    ({'shoppers': {'count': -1}}, 'shoppers.count'),
    ({'shoppers': {'count': 1.5}}, 'shoppers.count'),
    ({'shoppers': {'list_size': [4, 1]}}, 'shoppers.list_size'),
    ({'shoppers': {'dwell_s': [1.0]}}, 'shoppers.dwell_s'),
    ({'shoppers': {'arrival_rate_per_min': 0}}, 'shoppers.arrival_rate_per_min'),
    ({'behaviours': {'hand_off': 1.5}}, 'behaviours.hand_off'),
    ({'behaviours': {'tangeld': 0.1}}, 'behaviours.tangeld'),
    ({'behaviours': {'occlusion': 'yes'}}, 'behaviours.occlusion'),
    ({'behaviours': {'restock': -1.0}}, 'behaviours.restock'),
    ({'behaviours': {'return_same_bin': 0.6, 'return_other_bin': 0.6}},
     'behaviours.return_same_bin'),
    ({'render': {'image_scale': 0.0}}, 'render.image_scale'),
    ({'render': {'camera_fps': 0}}, 'render.camera_fps'),
    ({'render': 3}, 'render'),
    ({'sensors': {'camera_frame_drop': 1.0}}, 'sensors.camera_frame_drop'),
    ({'sensors': {'load_cell_noise_g': -1.0}}, 'sensors.load_cell_noise_g'),
    ({'sensors': {'camera_drop_burst_frames': 0.5}}, 'sensors.camera_drop_burst_frames'),
    ({'sensors': {'camera_frame_drop': 0.9, 'camera_drop_burst_frames': 2.0}},
     'sensors.camera_frame_drop'),
    ({'sensors': {'camera_clock_offset_ms': -5.0}}, 'sensors.camera_clock_offset_ms'),
    ({'sensors': {'camera_latency_ms': 1e5}}, 'sensors.camera_latency_ms'),
    ({'sensors': {'camera_capture_phase': 1}}, 'sensors.camera_capture_phase'),
    ({'sensors': {'camera_outage_s': [8.0, 3.0]}}, 'sensors.camera_outage_s'),
    ({'sensors': {'camera_clock': 1.0}}, 'sensors.camera_clock'),
    ({'behaviours': {'camera_outage': 100.0}}, 'behaviours.camera_outage'),
    ({'associates': {'uniform_rgb': [1, 2]}}, 'associates.uniform_rgb'),
    ({'associates': {'uniform_rgb': [0, 0, 300]}}, 'associates.uniform_rgb'),
    ({'associates': {'uniform_rgb': [0, 0.5, 3]}}, 'associates.uniform_rgb'),
    ({'associates': {'uniform': [0, 0, 3]}}, 'associates.uniform'),
    ({'entry': {'scan_delay_s': [3.0, 0.5]}}, 'entry.scan_delay_s'),
    ({'entry': {'scan_delay_s': [-1.0, 0.5]}}, 'entry.scan_delay_s'),
    ({'entry': {'scan_delay': [0.5, 3.0]}}, 'entry.scan_delay'),
    ({'entry': {'party_gap_s': -1.0}}, 'entry.party_gap_s'),
    ({'behaviours': {'tailgating': 2.0}}, 'behaviours.tailgating'),
])
def test_errors_name_file_and_field(tmp_path, change, field):
    data = _minimal(**change)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert message.startswith(f'{path}: ')
    assert field in message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ScenarioError, match='not found'):
        load_scenario(tmp_path / 'nope.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: [unclosed\n')
    with pytest.raises(ScenarioError, match='not valid YAML'):
        load_scenario(bad)
    bad.write_text('- a list\n')
    with pytest.raises(ScenarioError, match='mapping'):
        load_scenario(bad)


def test_scenario_error_is_a_value_error():
    assert issubclass(ScenarioError, ValueError)
    with pytest.raises(ValueError, match='seed'):
        Scenario(name='x', store_path='s.yaml', duration_s=1.0, seed=-1)
