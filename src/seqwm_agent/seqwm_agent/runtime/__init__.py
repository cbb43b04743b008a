"""The agent runtime, ROS-free: what one robot runs, and what evaluation and replay run with it.

* `messages`: ROS messages <-> the runtime's types (MocapSample, IntentMessage), both ways;
* `validation`: pure checks of frames and intents, each refusal named (REJECT_REASONS);
* `scheduler`: when a tick runs (now, after the predecessor's intent or its deadline) and
  when the watchdog stops the robot, with the clock passed in;
* `controller`: observation -> plan through the command chain -> command + outgoing intent,
  batched over B teams (B = 1 on a robot);
* `agent`: one robot's `AgentRuntime`, the four above behind three events
  (`on_frame`, `on_intent`, `on_timer`).
"""
