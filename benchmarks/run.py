"""Benchmark suite: every speed and memory target of the project, measured side by side in one run.

    python benchmarks/run.py                 # everything (about 15 minutes on 2 CPU cores)
    python benchmarks/run.py --only tracking guidance recompiles
    python benchmarks/run.py --quick         # fewer repeats and sizes, for a smoke run

Prints a table and writes a JSON summary (``--json``, default ``benchmarks/results/latest.json``).
Ratios are measured interleaved (A, B, A, B, ...) so load on a shared machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from rtc.numerics.model import FlowPolicy, ModelConfig  # noqa: E402


@dataclasses.dataclass
class Row:
    """One measured figure, with its target when the issue sets one."""

    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn so that machine load hits all of them alike."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def count_compiles() -> Iterator[list[int]]:
    """Count XLA backend compilations inside the block (reads jax's monitoring events)."""
    counter = [0]

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            counter[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def full_policy(chunk_size: int = 8, seed: int = 0) -> FlowPolicy:
    return FlowPolicy(679, 6, ModelConfig(action_chunk_size=chunk_size), rngs=nnx.Rngs(seed))


def inputs(batch: int, chunk_size: int = 8) -> tuple[jax.Array, jax.Array]:
    obs = jax.random.normal(jax.random.key(0), (batch, 679))
    prev = jax.random.normal(jax.random.key(1), (batch, chunk_size, 6))
    return obs, prev


# ------------------------------------------------------------------------------------------------
# Sections


def bench_tracking(quick: bool) -> list[Row]:
    """Target 1: tracking on vs off, and target 2: guidance overhead against plain sampling."""
    policy = full_policy()
    rows = []
    for batch in (1, 64):
        obs, prev = inputs(batch)

        def rtc(track: bool, obs=obs, prev=prev):
            out = policy.realtime_action(jax.random.key(2), obs, 20, prev, 3, 2, "exp", 5.0, track)
            return out[0] if track else out

        medians = interleaved_medians(
            {
                "tracked": lambda: rtc(True),
                "untracked": lambda: rtc(False),
                "plain": lambda obs=obs: policy.action(jax.random.key(2), obs, 20),
            },
            repeats=5 if quick else 21,
        )
        ratio = medians["tracked"] / medians["untracked"]
        rows += [
            Row("tracking", f"realtime_action tracked, batch {batch}", medians["tracked"] * 1e3, "ms"),
            Row("tracking", f"realtime_action untracked, batch {batch}", medians["untracked"] * 1e3, "ms"),
            Row("tracking", f"tracked / untracked, batch {batch}", ratio, "x", "<= 1.05", ratio <= 1.05),
            Row("guidance", f"plain action, batch {batch}", medians["plain"] * 1e3, "ms"),
        ]
        overhead = medians["untracked"] / medians["plain"]
        target = ("< 3.5", overhead < 3.5) if batch == 64 else ("", None)
        rows.append(Row("guidance", f"realtime / plain, batch {batch}", overhead, "x", *target))
    return rows


def bench_recompiles(quick: bool) -> list[Row]:
    """Target 3: settings changes compile nothing; a new step count or batch compiles once."""
    policy = full_policy()
    obs, prev = inputs(4)
    changes = [
        ("schedule", {"prefix_attention_schedule": "linear"}),
        ("schedule", {"prefix_attention_schedule": "zeros"}),
        ("delay", {"inference_delay": 1}),
        ("execute horizon", {"prefix_attention_horizon": 5}),
        ("guidance weight", {"max_guidance_weight": 1.5}),
        ("seed", {"rng": jax.random.key(9)}),
    ]
    base = {
        "rng": jax.random.key(0),
        "inference_delay": 3,
        "prefix_attention_horizon": 2,
        "prefix_attention_schedule": "exp",
        "max_guidance_weight": 5.0,
    }
    jax.block_until_ready(policy.realtime_action(obs=obs, num_steps=10, prev_action_chunk=prev, **base))  # compile
    rows = []
    for label, change in changes:
        args = base | change
        with count_compiles() as compiled:
            jax.block_until_ready(policy.realtime_action(obs=obs, num_steps=10, prev_action_chunk=prev, **args))
        rows.append(Row("recompiles", f"change {label}", compiled[0], "compiles", "0", compiled[0] == 0))
    for label, (steps, batch) in {"new flow-step count": (12, 4), "new batch size": (10, 8)}.items():
        obs_b, prev_b = inputs(batch)
        counts = []
        for _ in range(2):
            with count_compiles() as compiled:
                jax.block_until_ready(
                    policy.realtime_action(obs=obs_b, num_steps=steps, prev_action_chunk=prev_b, **base)
                )
            counts.append(compiled[0])
        rows.append(
            Row(
                "recompiles",
                f"{label} (first call, then again)",
                counts[0],
                "compiles",
                "1 then 0",
                counts[0] >= 1 and counts[1] == 0,
            )
        )
    return rows


def bench_throughput(quick: bool) -> list[Row]:
    """Target 7: seeds per second by batch size, and how cost grows with flow steps and chunk size."""
    rows = []
    policy = full_policy()
    batches = (1, 16, 256) if quick else (1, 4, 16, 64, 256, 1024)
    for batch in batches:
        obs, prev = inputs(batch)
        seconds = median_seconds(
            lambda obs=obs, prev=prev: policy.realtime_action(jax.random.key(0), obs, 10, prev, 3, 2, "exp", 5.0),
            repeats=3 if quick else 5,
        )
        rows.append(Row("throughput", f"RTC seeds/s, batch {batch}, 10 steps", batch / seconds, "seeds/s"))
    obs, prev = inputs(64)
    for steps in (5, 10, 20) if quick else (5, 10, 20, 40):
        seconds = median_seconds(
            lambda steps=steps: policy.realtime_action(jax.random.key(0), obs, steps, prev, 3, 2, "exp", 5.0), 3
        )
        rows.append(Row("throughput", f"RTC batch 64, {steps} flow steps", seconds * 1e3, "ms"))
    for chunk in (4, 8, 16):
        chunk_policy = full_policy(chunk)
        obs_c, prev_c = inputs(64, chunk)
        seconds = median_seconds(
            lambda p=chunk_policy, o=obs_c, y=prev_c: p.realtime_action(jax.random.key(0), o, 10, y, 1, 2, "exp", 5.0),
            3,
        )
        rows.append(Row("throughput", f"RTC batch 64, 10 steps, chunk {chunk}", seconds * 1e3, "ms"))
    rows += bench_env_throughput(quick)
    return rows


def bench_env_throughput(quick: bool) -> list[Row]:
    """Environment steps per second of batched closed-loop rollouts (demo policy, RTC, 5 flow steps)."""
    from rtc.io import levels

    rows = []
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    try:
        from rtc.experiments import rollout
    except ImportError:
        rollout = None
    if rollout is None or not hasattr(rollout, "benchmark_rollout"):
        # Plain batched stepping, the ceiling for any rollout.
        env = levels.make_env()
        _, state = levels.reset(level)

        @jax.jit
        def run(states, actions):
            step = jax.vmap(lambda s, a: env.step_env(jax.random.key(0), s, a, level.env_params)[1])
            return jax.lax.scan(lambda s, a: (step(s, a), None), states, actions)[0]

        for batch in (1, 16, 64) if quick else (1, 16, 64, 256):
            states = jax.tree.map(lambda x, b=batch: np.broadcast_to(x, (b, *x.shape)), state)
            actions = jax.random.uniform(jax.random.key(0), (32, batch, 6))
            seconds = median_seconds(lambda s=states, a=actions: run(s, a), 3)
            rows.append(Row("throughput", f"env steps/s, open loop, batch {batch}", 32 * batch / seconds, "steps/s"))
        return rows
    for batch in (1, 16) if quick else (1, 16, 64):
        steps_per_second = rollout.benchmark_rollout(level, episodes=batch)
        rows.append(Row("throughput", f"env steps/s, closed-loop RTC, {batch} episodes", steps_per_second, "steps/s"))
    return rows


def bench_jacobian_free(quick: bool) -> list[Row]:
    """Issue 14: time per chunk of RTC against its Jacobian-free variant (no VJP), full-size model, 10 steps."""
    policy = full_policy()
    rows = []
    for batch in (1, 64):
        obs, prev = inputs(batch)

        def rtc(jacobian_free: bool, obs=obs, prev=prev):
            return policy.realtime_action(
                jax.random.key(2), obs, 10, prev, 2, 4, "exp", 5.0, jacobian_free=jacobian_free
            )

        medians = interleaved_medians(
            {
                "rtc": lambda: rtc(False),
                "jacobian_free": lambda: rtc(True),
                "plain": lambda obs=obs: policy.action(jax.random.key(2), obs, 10),
            },
            repeats=5 if quick else 21,
        )
        free = medians["jacobian_free"]
        rows += [
            Row("jacobian_free", f"RTC per chunk, batch {batch}", medians["rtc"] * 1e3, "ms"),
            Row("jacobian_free", f"Jacobian-free per chunk, batch {batch}", medians["jacobian_free"] * 1e3, "ms"),
            Row("jacobian_free", f"plain per chunk, batch {batch}", medians["plain"] * 1e3, "ms"),
            Row("jacobian_free", f"RTC / Jacobian-free, batch {batch}", medians["rtc"] / free, "x"),
            Row("jacobian_free", f"Jacobian-free / plain, batch {batch}", free / medians["plain"], "x"),
        ]
    return rows + jacobian_shrink()


def bench_training_time(quick: bool) -> list[Row]:
    """Issue 22: time per chunk of training-time RTC against inference-time RTC (exp) and naive, full-size model,
    5 flow steps (the paper's closed loop), d = 2, s = 4, batch 1 and 64; each sampler is its own jitted program
    (what a deployment runs), timed interleaved. Timing does not depend on the weights, so the policy is random
    and flagged as trained for training-time RTC."""
    policy = full_policy()
    policy.max_simulated_delay = 4
    rows = []
    for batch in (1, 64):
        obs, prev = inputs(batch)
        medians = interleaved_medians(
            {
                "naive": lambda obs=obs: policy.action(jax.random.key(2), obs, 5),
                "rtc_exp": lambda obs=obs, prev=prev: policy.realtime_action(
                    jax.random.key(2), obs, 5, prev, 2, 4, "exp", 5.0
                ),
                "training_time_rtc": lambda obs=obs, prev=prev: policy.training_time_action(
                    jax.random.key(2), obs, 5, prev, 2
                ),
            },
            repeats=5 if quick else 21,
        )
        trained = medians["training_time_rtc"]
        rows += [Row("training_time", f"{m} per chunk, batch {batch}", v * 1e3, "ms") for m, v in medians.items()]
        rows += [
            Row("training_time", f"RTC (exp) / training-time RTC, batch {batch}", medians["rtc_exp"] / trained, "x"),
            Row("training_time", f"training-time RTC / naive, batch {batch}", trained / medians["naive"], "x"),
        ]
    return rows


def jacobian_shrink() -> list[Row]:
    """How RTC's correction J^T e compares with the error e on the demo policies (what the Jacobian-free variant
    replaces by e): median over 64 seeds of ||J^T e|| / ||e|| and of cos(J^T e, e), per flow step (5 steps, d = 2,
    s = 4, exp, at the reset observation, previous chunk = a plain chunk's new[s:] zero-padded)."""
    from rtc.experiments import protocol
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from rtc.numerics import methods

    run = read_run(ROOT / "runs" / "demo")
    rows = []
    for key in ("worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"):
        policy = load_policy(run.checkpoint(-1, key))
        level = levels.load_level(levels.resolve_level_path(key.replace("worlds_l_", "worlds/l/") + ".json"))
        obs = np.broadcast_to(levels.reset(level)[0], (64, policy.obs_dim))
        prev = protocol.next_prev_chunk(policy.action(jax.random.key(0), obs, 5), 4)
        noise = methods.candidate_noise(jax.random.key(1), (64, 8, policy.action_dim), 1)
        tracked = methods.track_method(policy, "rtc_exp", methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5))
        correction, error = (tracked[k].reshape(5, 64, -1) for k in ("correction", "error"))
        norms = np.linalg.norm(correction, axis=-1), np.linalg.norm(error, axis=-1)
        ratio = np.median(norms[0] / norms[1], axis=1)
        cosine = np.median((correction * error).sum(-1) / (norms[0] * norms[1]), axis=1)
        name = f"demo {key.removeprefix('worlds_l_')}, median"
        for label, values in (("||J^T e|| / ||e||", ratio), ("cos(J^T e, e)", cosine)):
            steps = "per step: " + " ".join(f"{v:.2f}" for v in values)
            rows.append(Row("jacobian_free", f"{label}, {name}", float(np.median(values)), steps))
    return rows


Z95 = 1.959963984540054


def pooled_mean_95(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Mean over all switches (``sum(sums) / sum(counts)``, as ``Rollout.summary``) and 1.96 x its standard error,
    episodes taken as independent clusters of switches (delta method for a ratio of means)."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    used = counts > 0
    sums, counts = sums[used], counts[used]
    ratio, n = sums.sum() / counts.sum(), counts.size
    variance = n / (n - 1) * float(((sums - ratio * counts) ** 2).sum()) / counts.sum() ** 2
    return float(ratio), Z95 * variance**0.5


def paired_difference_95(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]):
    """``pooled mean(second) - pooled mean(first)`` and 1.96 x its standard error when both ran on the same
    episode seeds (per-episode linearised residuals of both ratios, differenced, over episodes)."""
    (s1, c1), (s2, c2) = (tuple(np.asarray(a, float) for a in pair) for pair in (first, second))
    r1, r2 = s1.sum() / c1.sum(), s2.sum() / c2.sum()
    residual = (s2 - r2 * c2) / c2.sum() - (s1 - r1 * c1) / c1.sum()
    n = residual.size
    return float(r2 - r1), Z95 * (n / (n - 1) * float((residual**2).sum())) ** 0.5


def bench_jacobian_free_loop(quick: bool) -> list[Row]:
    """Issue 14: closed-loop solve rate and mean boundary jump, RTC (exp) against its Jacobian-free variant,
    on the demo run's two levels at the paper's point (d = 2, s = 4, 5 flow steps, w_max 5, action noise 0.1);
    both methods run on the same episode seeds. Rates with Wilson 95 % intervals, jumps mean +- 1.96 SE, and
    the paired jump difference over episodes. ``RTC_BENCH_EPISODES`` sets the episodes per level (128)."""
    from rtc.experiments import rollout
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from rtc.numerics import metrics

    run = read_run(ROOT / "runs" / "demo")
    episodes = 16 if quick else int(os.environ.get("RTC_BENCH_EPISODES", "128"))
    rows = []
    for key in ("worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"):
        policy = load_policy(run.checkpoint(-1, key))
        level = levels.load_level(levels.resolve_level_path(key.replace("worlds_l_", "worlds/l/") + ".json"))
        jumps = {}
        for method in ("rtc_exp", "rtc_exp_jacobian_free"):
            settings = rollout.RolloutSettings(
                method=method, inference_delay=2, execute_horizon=4, num_episodes=episodes
            )
            start = time.perf_counter()
            result = rollout.run_rollout(policy, level, settings, record=False)
            seconds = time.perf_counter() - start
            solved = int(result.solved.sum())
            low, high = metrics.wilson_interval(solved, episodes)
            jump, half = pooled_mean_95(result.jump_sums, result.jump_counts)
            jumps[method] = (result.jump_sums, result.jump_counts)
            name = f"{key.removeprefix('worlds_l_')}, {method}, {episodes} episodes"
            rows += [
                Row("jacobian_free_loop", f"solve rate, {name}", solved / episodes, f"[{low:.3f}, {high:.3f}]"),
                Row("jacobian_free_loop", f"mean jump, {name}", jump, f"+- {half:.4f}"),
                Row("jacobian_free_loop", f"mean return, {name}", float(result.returns.mean()), ""),
                Row("jacobian_free_loop", f"wall time incl. compile, {name}", seconds, "s"),
            ]
            print(rows[-4:], file=sys.stderr, flush=True)
        difference, half = paired_difference_95(jumps["rtc_exp"], jumps["rtc_exp_jacobian_free"])
        name = f"{key.removeprefix('worlds_l_')}, paired over {episodes} episodes"
        rows.append(Row("jacobian_free_loop", f"jump Jacobian-free - RTC, {name}", difference, f"+- {half:.4f}"))
    return rows


YARDSTICK = "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"


def cli_command(root: Path, out: str, *extra: str) -> list[str]:
    """The README's documented command line, run from the checkout at ``root``."""
    script = root / "examples" / "visualize_flow_matching.py"
    return [sys.executable, str(script), str(root / "runs" / "demo"), "--output-dir", out, *extra]


def bench_cli(quick: bool) -> list[Row]:
    """Targets 5 and issue 13: the documented example on the demo run, whole process, against the import yardstick.

    The yardstick (``python -c "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"``), the default
    command and ``--situation protocol`` are timed in turn (yardstick, default, protocol, yardstick, ...),
    after one run of each that fills the caches; ratios are of the medians. With ``RTC_BENCH_BEFORE`` set to
    another checkout (e.g. a worktree of ``main``), its two commands join the same rotation, so before and
    after are measured in one run under the same load.
    """
    before = os.environ.get("RTC_BENCH_BEFORE")
    with tempfile.TemporaryDirectory() as out:
        commands = {"yardstick": [sys.executable, "-c", YARDSTICK]}
        checkouts = {"": ROOT} | ({"before: ": Path(before).resolve()} if before else {})
        for label, root in checkouts.items():
            commands[f"{label}default"] = cli_command(root, f"{out}/{label}default")
            commands[f"{label}protocol"] = cli_command(root, f"{out}/{label}protocol", "--situation", "protocol")

        def timed(command: list[str], cwd: Path) -> float:
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=cwd)
            return time.perf_counter() - start

        def cwd(name: str) -> Path:
            return checkouts["before: "] if name.startswith("before: ") else ROOT

        first = {name: timed(command, cwd(name)) for name, command in commands.items()}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(2 if quick else 5):
            for name, command in commands.items():
                times[name].append(timed(command, cwd(name)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    yardstick = medians["yardstick"]
    rows = [
        Row("cli", "visualize_flow_matching on runs/demo, first run (fills caches)", first["default"], "s"),
        Row(
            "cli", "yardstick: python -c 'import jax, jax.numpy, flax.nnx, matplotlib.figure' (median)", yardstick, "s"
        ),
    ]
    for name in commands:
        if name == "yardstick":
            continue
        median = medians[name]
        rows.append(Row("cli", f"{name} runs/demo, caches warm (median; min {min(times[name]):.2f} s)", median, "s"))
        ratio = median / yardstick
        if name == "default":
            rows.append(Row("cli", "default / yardstick (issue 13)", ratio, "x", "<= 3", ratio <= 3))
            rows.append(Row("cli", "default, caches warm (target 5)", median, "s", "<= 12", median <= 12))
        else:
            rows.append(Row("cli", f"{name} / yardstick", ratio, "x"))
    return rows


def bench_app(quick: bool) -> list[Row]:
    """Targets 4, 6, 8: app latency, bundle build, memory (run in a fresh process: see benchmarks/app_bench.py)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "app_bench.py"), *(["--quick"] if quick else [])],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        print(result.stderr[-4000:], file=sys.stderr)
        return [Row("app", "app benchmark failed (see stderr)", float("nan"), "", "runs", False)]
    return [Row(**row) for row in json.loads(result.stdout.strip().splitlines()[-1])]


def _sweep_entries():
    from rtc.experiments.sweep import grid as sweep_grid
    from rtc.io.checkpoints import open_run

    run = open_run(ROOT / "runs" / "demo")
    return sweep_grid.load_entries(run, 1, sweep_grid.choose_levels(run, 1, ["worlds_l_grasp_easy"])[0])


def bench_sweep(quick: bool) -> list[Row]:
    """Closed-loop throughput of each paper method in this process (BID N = 16, 5 flow steps, 256-step
    episodes, d = s = 2), per CPU core: episodes and environment steps per CPU-second of this process (all its
    threads), which does not depend on what else the machine runs; and the wall time of one small sweep on a
    local 2-worker Ray instance against this process (both warm: programs compiled and cached on disk; Ray's
    workers at niceness 0 like this process, instead of Ray's default 15)."""
    from rtc.experiments import pipeline, rollout, sweep
    from rtc.experiments.sweep import grid as sweep_grid
    from rtc.experiments.sweep import ray_backend as sweep_ray
    from rtc.experiments.sweep import run as sweep_run
    from rtc.experiments.sweep import store as sweep_store

    pipeline.enable_compilation_cache()
    entries = _sweep_entries()
    entry = entries[0]
    episodes = 16 if quick else 64
    rows = []
    for method in ("naive", "rtc_exp", "hard_masking", "bid"):
        point = rollout.RolloutSettings(
            method=method, inference_delay=2, execute_horizon=2, num_episodes=episodes, bid_samples=16
        )
        rollout.run_rollout(entry.policy, entry.level, dataclasses.replace(point, seed=1), record=False)  # compile
        wall, cpu = time.perf_counter(), time.process_time()
        result = rollout.run_rollout(entry.policy, entry.level, point, record=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        steps = int(result.lengths.sum())
        name = f"{method} ({episodes} episodes, mean length {steps / episodes:.0f} steps)"
        rows.append(Row("sweep", f"{name}: episodes per CPU-second", episodes / cpu, "ep/s/core"))
        rows.append(Row("sweep", f"{name}: env steps per CPU-second", steps / cpu, "steps/s/core"))
        rows.append(Row("sweep", f"{name}: env steps per wall second", steps / wall, "steps/s"))
    # the same small sweep in this process and on a local Ray instance with 2 workers
    settings = sweep.SweepSettings(
        methods=("naive", "rtc_exp"),
        delays=(1, 2, 3, 4),
        execute_horizon_rule="min",
        template=rollout.RolloutSettings(num_episodes=16, episode_steps=128 if quick else 256, bid_samples=16),
    )
    tasks = sweep_grid.plan(entries, settings)
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 (Ray reads its config names as spelled)
    with tempfile.TemporaryDirectory() as folder:
        sweep_run.run_grid(entries, tasks, sweep_store.ResultsStore(Path(folder) / "warm"))  # compiles
        start = time.perf_counter()
        sweep_ray.connect(None, num_cpus=2)
        startup = time.perf_counter() - start
        sweep_run.run_grid(entries, tasks, sweep_store.ResultsStore(Path(folder) / "ray_warm"), ray_address="")
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for repeat in range(1 if quick else 2):  # interleaved, so machine load hits both alike
            for name, address in (("local", False), ("ray", "")):
                store = sweep_store.ResultsStore(Path(folder) / f"{name}{repeat}")
                start = time.perf_counter()
                sweep_run.run_grid(entries, tasks, store, ray_address=address)
                times[name].append(time.perf_counter() - start)
        import ray

        ray.shutdown()
    local, remote = statistics.median(times["local"]), statistics.median(times["ray"])
    total = sum(t.point.num_episodes for t in tasks)
    rows += [
        Row("sweep", f"small sweep in-process ({len(tasks)} points, {total} episodes), median", local, "s"),
        Row("sweep", "same sweep, local Ray, 2 workers (warm), median", remote, "s"),
        Row("sweep", "Ray / in-process wall time", remote / local, "ratio", "<= 1.3", remote / local <= 1.3),
        Row("sweep", "Ray start (local instance, once)", startup, "s"),
    ]
    return rows


SECTIONS: dict[str, Callable[[bool], list[Row]]] = {
    "tracking": bench_tracking,
    "recompiles": bench_recompiles,
    "throughput": bench_throughput,
    "jacobian_free": bench_jacobian_free,
    "jacobian_free_loop": bench_jacobian_free_loop,
    "training_time": bench_training_time,
    "cli": bench_cli,
    "app": bench_app,
    "sweep": bench_sweep,
}


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
    }


def print_table(rows: list[Row]) -> None:
    width = max(len(r.name) for r in rows) + 2
    print(f"{'section':12s} {'measure':{width}s} {'value':>12s} {'unit':10s} {'target':10s} ok")
    for r in rows:
        mark = "" if r.ok is None else ("yes" if r.ok else "NO")
        print(f"{r.section:12s} {r.name:{width}s} {r.value:12.3f} {r.unit:10s} {r.target:10s} {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="sections to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or list(SECTIONS):
        print(f"== {name}", file=sys.stderr, flush=True)
        rows += SECTIONS[name](args.quick)
    print_table(rows)
    summary = {
        "machine": machine(),
        "quick": args.quick,
        "rows": [r.as_dict() for r in rows],
        "all_targets_met": all(r.ok for r in rows if r.ok is not None),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"all_targets_met": summary["all_targets_met"], "json": str(args.json)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
