"""Simulated store: scenarios, people, world, load cells, ground truth (docs/simulation.md).

The renderer (``render``) lives alongside; this package imports nothing from ROS.
"""
