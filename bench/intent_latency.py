"""Intent hop latency between two processes over DDS, next to a small-message baseline.

What a robot's successor waits for on every tick: one seqwm_msgs/Intent from the predecessor's
process to its own, with the agent node's QoS (best effort, keep last 1) and rclpy executors on
both ends. Two measurements per message kind, one message in flight at a time:

  one_way  sender stamps CLOCK_MONOTONIC into header.stamp, the echo process subtracts it on
           receipt (same machine, so the clock is shared): publish + serialise + DDS + take +
           deserialise + executor dispatch;
  rtt/2    the echo process republishes at once; the sender measures the round trip.

Baseline: std_msgs/Header (a few bytes) through the same path, same run, so `ratio` shows what the
Intent's size costs beyond the fixed cost of a hop. Intents are sized like the real ones: the
default model widths (latent 32), horizon 3, for a 2-robot and a 5-robot team.

    python bench/intent_latency.py            # one JSON object on stdout (target: p99 <= 2 ms)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import emit, percentile_ms  # noqa: E402

SAMPLES = 1500
WARMUP = 100
TIMEOUT_S = 0.5
HORIZON, LATENT, ACTION = 3, 32, 3
TEAMS = (2, 5)


def qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    # as the agent node's INTENT_QOS
    return QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                      depth=1, durability=DurabilityPolicy.VOLATILE)


def kinds():
    from seqwm_msgs.msg import Intent
    from std_msgs.msg import Header
    out = {'header': Header}
    for n in TEAMS:
        out[f'intent_n{n}'] = Intent
    return out


def make(kind: str):
    import numpy as np
    from seqwm_msgs.msg import Intent
    from std_msgs.msg import Header
    if kind == 'header':
        return Header()
    n = int(kind.split('_n')[1])
    m = Intent()
    m.num_agents, m.horizon, m.latent_dim, m.action_dim = n, HORIZON, LATENT, ACTION
    m.model_set_id, m.sender, m.sender_index = 'bench', 'go2w_1', 0
    m.latents = np.random.default_rng(0).random(n * (HORIZON + 1) * LATENT, dtype=np.float32)
    m.actions = np.zeros(n * HORIZON * ACTION, dtype=np.float32)
    m.valid = [True] * n
    return m


def header_of(msg):
    return msg if not hasattr(msg, 'header') else msg.header


def stamp_now(msg) -> None:
    ns = time.monotonic_ns()
    h = header_of(msg)
    h.stamp.sec, h.stamp.nanosec = divmod(ns, 1_000_000_000)


def age_s(msg) -> float:
    h = header_of(msg)
    return (time.monotonic_ns() - (h.stamp.sec * 1_000_000_000 + h.stamp.nanosec)) / 1e9


def echo() -> None:
    """Child: republish every ping as a pong at once; report one-way latencies at the end."""
    import rclpy
    from rclpy.node import Node

    rclpy.init()
    node = Node('intent_latency_echo')
    one_way: dict[str, list[float]] = {k: [] for k in kinds()}
    pongs = {k: node.create_publisher(t, f'/bench/{k}/pong', qos()) for k, t in kinds().items()}

    def on_ping(kind, msg):
        one_way[kind].append(age_s(msg))
        pongs[kind].publish(msg)

    for k, t in kinds().items():
        node.create_subscription(t, f'/bench/{k}/ping', lambda m, k=k: on_ping(k, m), qos())
    stop = Path(sys.argv[2])
    while not stop.exists():
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(one_way))
    node.destroy_node()
    rclpy.shutdown()


def main() -> None:
    import rclpy
    from rclpy.node import Node

    os.environ.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 80))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    stop = Path(f'/tmp/intent_latency_stop_{os.getpid()}')
    stop.unlink(missing_ok=True)
    child = subprocess.Popen([sys.executable, __file__, '--echo', str(stop)],
                             stdout=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS='1'))
    rclpy.init()
    node = Node('intent_latency_ping')
    got: list = []
    pubs, subs = {}, {}
    for k, t in kinds().items():
        pubs[k] = node.create_publisher(t, f'/bench/{k}/ping', qos())
        subs[k] = node.create_subscription(t, f'/bench/{k}/pong', got.append, qos())
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    t0 = time.monotonic()
    while any(p.get_subscription_count() < 1 for p in pubs.values()) or \
            any(node.count_publishers(f'/bench/{k}/pong') < 1 for k in pubs):
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() - t0 > 30:
            raise SystemExit('echo process not discovered within 30 s')
    time.sleep(0.5)

    rtt: dict[str, list[float]] = {}
    lost: dict[str, int] = {}
    # interleave the kinds so that machine load hits all of them alike
    order = [k for _ in range(SAMPLES + WARMUP) for k in pubs]
    for k in pubs:
        rtt[k], lost[k] = [], 0
    msgs = {k: make(k) for k in pubs}
    for i, k in enumerate(order):
        msg = msgs[k]
        got.clear()
        t_send = time.perf_counter()
        stamp_now(msg)
        pubs[k].publish(msg)
        while not got and time.perf_counter() - t_send < TIMEOUT_S:
            executor.spin_once(timeout_sec=TIMEOUT_S)
        if not got:
            lost[k] += 1
            continue
        if i >= WARMUP * len(pubs):
            rtt[k].append(time.perf_counter() - t_send)
    stop.touch()
    out, _ = child.communicate(timeout=30)
    stop.unlink(missing_ok=True)
    one_way = {k: v[WARMUP:] for k, v in json.loads(out.decode().strip().splitlines()[-1]).items()}
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()

    figures: dict = {'qos': 'best_effort, keep_last 1', 'samples': SAMPLES,
                     'rmw': os.environ.get('RMW_IMPLEMENTATION', ''), 'horizon': HORIZON,
                     'latent_dim': LATENT}
    for k, msg in msgs.items():
        floats = len(getattr(msg, 'latents', [])) + len(getattr(msg, 'actions', []))
        figures[k] = {
            'payload_floats': floats,
            'one_way_p50_ms': round(percentile_ms(one_way[k], 50), 4),
            'one_way_p99_ms': round(percentile_ms(one_way[k], 99), 4),
            'rtt_half_p50_ms': round(percentile_ms(rtt[k], 50) / 2, 4),
            'rtt_half_p99_ms': round(percentile_ms(rtt[k], 99) / 2, 4),
            'lost': lost[k],
        }
    base = figures['header']
    for n in TEAMS:
        f = figures[f'intent_n{n}']
        f['ratio_one_way_p50_vs_header'] = round(f['one_way_p50_ms'] / base['one_way_p50_ms'], 3)
        f['meets_p99_2ms'] = f['one_way_p99_ms'] <= 2.0
    emit('intent_latency', figures)


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--echo':
        echo()
    else:
        main()
