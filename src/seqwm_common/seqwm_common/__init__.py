"""What every SeqWM node shares.

* `stamps`: integer nanoseconds <-> builtin_interfaces/Time and header stamps (pure);
* `throttled_log`: one log line per event, repeats folded into a count (pure);
* `node`: the QoS profiles and topic names of the team, `StartupError`, parameter declaration
  from a spec table, and `run_node`, the one `main()` shape of every node (rclpy).
"""
