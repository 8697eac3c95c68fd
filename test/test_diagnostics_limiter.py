"""The shared limiter of repeated warnings (nodes log a repeated drop once per period)."""

from go_store_nodes.ros.diagnostics import LogLimiter


def test_a_key_is_let_through_once_per_period_and_keys_are_independent():
    now = [100.0]
    limiter = LogLimiter(5.0, clock=lambda: now[0])
    assert limiter.ready(('cam_a', 'no_transform'))
    assert not limiter.ready(('cam_a', 'no_transform'))
    assert limiter.ready(('cam_b', 'no_transform'))      # another camera: its own period
    now[0] += 4.9
    assert not limiter.ready(('cam_a', 'no_transform'))
    now[0] += 0.1
    assert limiter.ready(('cam_a', 'no_transform'))
    assert not limiter.ready(('cam_a', 'no_transform'))
