"""ROS-free SeqWM core: world model, planner, intent layout, filters, checkpoints. Never imports rclpy."""
