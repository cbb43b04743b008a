"""The shared SeqWM trainer (issue #5): replay buffer, sequential update, collection, evaluation.

No rclpy here. `seqwm-train` (cli.py) trains every agent of a team and writes the model dir the
robots load; `seqwm-eval` (evaluate.py) evaluates a model dir exactly as deployment plans.
See docs/trainer.md.
"""
