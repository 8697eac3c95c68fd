"""Pure core of go_store: algorithms and data models, with no ROS imports."""
