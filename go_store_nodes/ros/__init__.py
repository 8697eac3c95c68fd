"""ROS edge helpers shared by the nodes: parameters, TF, diagnostics, conversions."""
