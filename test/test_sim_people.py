"""Simulated people: anthropometry, outfits, two-segment IK, walking and reaching poses."""

import dataclasses
import math

import numpy as np
import pytest

from go_store_nodes.core.sim.people import (
    BodyState,
    HeldItem,
    JOINTS,
    Physique,
    pose_joints,
    PoseInput,
    reach_posture,
    sample_physique,
    to_body_frame,
    two_link_ik,
)
from go_store_nodes.core.sim.render_scene import body_capsules, KIND_HEAD


def _people(count, seed=0):
    rng = np.random.default_rng(seed)
    return [sample_physique(rng) for _ in range(count)]


def test_anthropometry_ranges():
    people = _people(3000)
    heights = np.array([p.height_m for p in people])
    assert heights.min() >= 1.50 and heights.max() <= 1.95
    assert abs(heights.mean() - 1.70) < 0.01
    assert abs(heights.std() - 0.09) < 0.01
    assert all(0.40 <= p.shoulder_width_m <= 0.50 for p in people)
    assert all(0.60 <= p.arm_reach_m <= 0.80 for p in people)
    assert all(1.0 <= p.walk_speed_mps <= 1.4 for p in people)
    assert all(0.5 <= p.browse_speed_mps <= 0.8 for p in people)


def test_colours_vary_and_are_deterministic():
    people = _people(50, seed=3)
    assert len({p.shirt_rgb for p in people}) >= 45
    assert len({p.trousers_rgb for p in people}) >= 20
    assert len({p.skin_rgb for p in people}) >= 20
    assert people == _people(50, seed=3)
    assert people != _people(50, seed=4)


def test_physique_validation_names_the_field():
    good = _people(1)[0]
    with pytest.raises(ValueError, match='height_m'):
        Physique(**{**good.__dict__, 'height_m': 2.3})
    with pytest.raises(ValueError, match='shirt_rgb'):
        Physique(**{**good.__dict__, 'shirt_rgb': (0, 0, 300)})
    with pytest.raises(ValueError, match='hand'):
        HeldItem('x', np.zeros(3), 'pocket')


def test_two_link_ik_keeps_segment_lengths():
    rng = np.random.default_rng(1)
    root = np.array([0.0, 0.0, 1.4])
    for _ in range(200):
        target = root + rng.uniform(-0.8, 0.8, 3)
        middle, end = two_link_ik(root, target, 0.3, 0.35, np.array([0.0, 0.0, -1.0]))
        assert np.linalg.norm(middle - root) == pytest.approx(0.3, abs=1e-6)
        assert np.linalg.norm(end - middle) == pytest.approx(0.35, abs=1e-6)
        distance = np.linalg.norm(target - root)
        if 0.06 < distance < 0.649:
            np.testing.assert_allclose(end, target, atol=1e-6)
        elif distance >= 0.65:
            direction = (target - root) / distance
            np.testing.assert_allclose((end - root) / np.linalg.norm(end - root), direction,
                                       atol=1e-6)


def test_elbow_bends_towards_the_bend_hint():
    middle, _ = two_link_ik(np.zeros(3), np.array([0.5, 0.0, 0.0]), 0.3, 0.3,
                            np.array([0.0, 0.0, -1.0]))
    assert middle[2] < -0.1


def test_standing_pose_proportions():
    physique = _people(1, seed=5)[0]
    joints = pose_joints(physique, PoseInput(2.0, 3.0, 0.7))
    assert set(joints) == set(JOINTS)
    height = physique.height_m
    assert joints['head'][2] == pytest.approx(0.925 * height, abs=0.02)
    assert joints['head'][2] < height
    assert joints['pelvis'][2] == pytest.approx(0.53 * height, abs=0.02)
    for foot in ('left_foot', 'right_foot'):
        assert 0.0 < joints[foot][2] < 0.1
    width = np.linalg.norm(joints['left_shoulder'] - joints['right_shoulder'])
    assert width == pytest.approx(physique.shoulder_width_m, abs=1e-6)
    np.testing.assert_allclose(joints['pelvis'][:2], [2.0, 3.0], atol=1e-6)
    # Facing 0.7 rad: the left shoulder lies to the left of the heading.
    forward = np.array([math.cos(0.7), math.sin(0.7)])
    left = joints['left_shoulder'][:2] - joints['pelvis'][:2]
    assert forward[0] * left[1] - forward[1] * left[0] > 0.0


def test_walking_keeps_limb_lengths_and_swings():
    physique = _people(1, seed=6)[0]
    lengths = []
    hands_x = []
    for phase in np.linspace(0.0, 4 * math.pi, 40):
        j = pose_joints(physique, PoseInput(0.0, 0.0, 0.0, phase, 1.2))
        lengths.append([np.linalg.norm(j['left_elbow'] - j['left_shoulder']),
                        np.linalg.norm(j['left_hand'] - j['left_elbow']),
                        np.linalg.norm(j['left_foot'] - j['left_knee'])])
        hands_x.append(j['left_hand'][0] - j['left_shoulder'][0])
    lengths = np.array(lengths)
    assert np.ptp(lengths, axis=0).max() < 1e-6
    assert np.ptp(hands_x) > 0.2      # arm swing


@pytest.mark.parametrize('target_z', [0.42, 0.9, 1.5])
def test_reaching_puts_the_hand_on_the_target(target_z):
    for physique in _people(30, seed=9):
        heading = math.pi / 2.0
        target = np.array([1.0, 0.45, target_z])    # 0.45 m in front of the pelvis
        body = to_body_frame(target, 1.0, 0.0, heading)
        crouch, lean = reach_posture(physique, body, 'right')
        assert 0.0 <= crouch <= 0.6 and 0.0 <= lean <= 0.3
        joints = pose_joints(physique, PoseInput(1.0, 0.0, heading, crouch_m=crouch,
                                                 lean_m=lean, right_target=target,
                                                 right_amount=1.0))
        np.testing.assert_allclose(joints['right_hand'], target, atol=1e-6)
        upper = np.linalg.norm(joints['right_elbow'] - joints['right_shoulder'])
        assert upper == pytest.approx(physique.upper_arm_m, abs=1e-6)
        assert joints['right_elbow'][2] < joints['right_shoulder'][2] + 0.2


def test_reach_posture_refuses_targets_out_of_reach():
    physique = _people(1)[0]
    with pytest.raises(ValueError, match='away'):
        reach_posture(physique, np.array([1.5, 0.0, 1.0]), 'left')
    with pytest.raises(ValueError):
        reach_posture(physique, np.array([0.3, 0.0, 2.6]), 'left')


def test_body_state_holds_the_contract_fields():
    physique = _people(1)[0]
    joints = pose_joints(physique, PoseInput(1.0, 2.0, 0.0))
    body = BodyState(3, joints, physique.shirt_rgb, physique.trousers_rgb, physique.skin_rgb,
                     (HeldItem('sku', joints['left_hand'], 'left'),))
    np.testing.assert_allclose(body.position_xy(), [1.0, 2.0])
    assert body.held[0].hand == 'left'


def _luma(rgb):
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def _chroma(rgb):
    return max(rgb) - min(rgb)


def test_clothes_are_mostly_dark_and_neutral_with_many_alike():
    people = _people(3000, seed=5)
    tops = [p.shirt_rgb for p in people]
    neutral = np.mean([_chroma(c) < 60 or _luma(c) < 70 for c in tops])
    saturated = np.mean([_chroma(c) > 120 for c in tops])
    assert neutral > 0.7
    assert 0.03 < saturated < 0.25
    # Many dressed alike: a sizeable share wear (nearly) black.
    near_black = np.mean([max(c) < 50 for c in tops])
    assert near_black > 0.12
    trousers = [p.trousers_rgb for p in people]
    assert np.mean([_luma(c) < 110 for c in trousers]) > 0.7


def test_hair_hats_and_bags_follow_natural_shares():
    people = _people(3000, seed=6)
    hair = [p.hair_rgb for p in people]
    assert np.mean([_luma(c) < 80 for c in hair]) > 0.55          # black and brown
    assert 0.05 < np.mean([_luma(c) > 140 and c[0] > c[2] + 40 for c in hair]) < 0.2  # blond
    assert 0.03 < np.mean([c[0] > c[1] + 50 for c in hair]) < 0.1   # red
    assert 0.08 < np.mean([p.hat_rgb is not None for p in people]) < 0.16
    assert 0.1 < np.mean([p.bag == 'backpack' for p in people]) < 0.2
    assert 0.1 < np.mean([p.bag == 'shoulder' for p in people]) < 0.2


def test_a_uniform_dresses_staff_without_hat_or_bag():
    rng = np.random.default_rng(1)
    staff = [sample_physique(rng, (30, 110, 70)) for _ in range(200)]
    assert {p.shirt_rgb for p in staff} == {(30, 110, 70)}
    assert all(p.hat_rgb is None and p.bag == '' for p in staff)
    with pytest.raises(ValueError, match='bag'):
        Physique(**{**staff[0].__dict__, 'bag': 'suitcase'})
    with pytest.raises(ValueError, match='hair_rgb'):
        Physique(**{**staff[0].__dict__, 'hair_rgb': (0, 0)})


def _dressed(physique, person_id=1, heading=0.0):
    joints = pose_joints(physique, PoseInput(2.0, 2.0, heading))
    return BodyState(person_id, joints, physique.shirt_rgb, physique.trousers_rgb,
                     physique.skin_rgb, (), heading, 'shopper', physique.shoulder_width_m,
                     physique.hair_rgb, physique.hat_rgb, physique.bag, physique.bag_rgb)


def test_hair_colour_is_the_persons_not_a_function_of_the_id():
    physique = _people(1, seed=2)[0]
    heads = [body_capsules(_dressed(physique, person_id)) for person_id in (1, 2, 7, 300)]
    hair = {tuple(c.rgb2[c.kind == KIND_HEAD][0]) for c in heads}
    assert hair == {tuple(float(v) for v in physique.hair_rgb)}


def test_hats_and_bags_change_the_silhouette():
    plain = dataclasses.replace(_people(1, seed=2)[0], hat_rgb=None, bag='')
    base = body_capsules(_dressed(plain))

    def reach(capsules, direction):
        ends = np.concatenate([capsules.a, capsules.b])
        radii = np.concatenate([capsules.radius, capsules.radius])
        return float(np.max(ends @ direction + radii))

    backwards = np.array([-1.0, 0.0, 0.0])      # heading 0: the person faces map +x
    backpack = body_capsules(_dressed(dataclasses.replace(plain, bag='backpack',
                                                          bag_rgb=(200, 30, 30))))
    assert reach(backpack, backwards) > reach(base, backwards) + 0.1
    assert any(tuple(c) == (200.0, 30.0, 30.0) for c in backpack.rgb)
    hat = body_capsules(_dressed(dataclasses.replace(plain, hat_rgb=(20, 20, 20))))
    up = np.array([0.0, 0.0, 1.0])
    assert reach(hat, up) > reach(base, up) + 0.02
    shoulder = body_capsules(_dressed(dataclasses.replace(plain, bag='shoulder')))
    assert len(shoulder) > len(base)
