"""rosbag2 MCAP bags with rosbags: the type store, topic names, writing and reading.

Nothing here imports rclpy: bags are written and read with rosbags' own CDR
serialisation, from message definitions that hash exactly as rosidl's (RIHS01).
"""
