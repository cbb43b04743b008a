"""NOKOV motion capture -> ROS 2 bridge."""
