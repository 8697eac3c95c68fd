"""Replay a bag through the node graph: rclpy player (with /clock) and recorder."""
