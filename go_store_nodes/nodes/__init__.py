"""The go_store ROS 2 nodes: one module per node, each with a Node subclass and main()."""
