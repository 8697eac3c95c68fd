"""go_store: checkout-free store nodes on ROS 2 (Python side of the go_store package)."""
