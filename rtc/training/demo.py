"""The committed demo run: multimodal scripted demonstrations in Kinetix and a flow policy trained on them.

Each demonstration episode picks one of three scripted behaviours (``MODES``) and keeps it, so at a
given state the demonstrated action chunks fall into distinct modes. A flow policy trained on them
is multimodal: plain samples from different seeds land in different modes, while RTC, given a
previous chunk from one mode, stays in it (``mode_consistency`` measures both).

Regenerate the committed run (progress bars on stderr)::

    python -m rtc.training.demo --out runs/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from rtc.experiments import protocol
from rtc.io import levels
from rtc.io.checkpoints import save_policy
from rtc.numerics.model import FlowPolicy, ModelConfig
from rtc.training.flow import TrainConfig, simulated_delay_metadata, train

MODES: tuple[str, ...] = ("push", "pull", "wave")
DEMO_LEVELS: tuple[str, ...] = ("worlds/l/grasp_easy.json", "worlds/l/hard_lunar_lander.json")
DEMO_RUN = levels.PROJECT_ROOT / "runs" / "demo"
DEMO_MODEL = ModelConfig(channel_dim=64, channel_hidden_dim=128, token_hidden_dim=32, num_layers=4, action_chunk_size=8)
ACTION_LOW = np.array([-1.0] * 4 + [0.0] * 2, np.float32)
ACTION_HIGH = np.ones(6, np.float32)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """How the demonstrations are generated."""

    episodes_per_mode: int = 48
    episode_steps: int = 96
    action_noise: float = 0.05
    wave_period: float = 16.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def scripted_actions(mode: int | jax.Array, steps: jax.Array, wave_period: float = DemoConfig.wave_period) -> jax.Array:
    """Noise-free action of behaviour ``mode`` at episode steps ``steps [...]`` -> ``[..., 6]``.

    push: motors +0.75, left thruster on; pull: motors -0.75, right thruster on;
    wave: motors in a travelling sine wave, thrusters alternating.
    """
    steps = jnp.asarray(steps, jnp.float32)[..., None]
    phase = 2 * math.pi * steps / wave_period
    push = jnp.broadcast_to(jnp.array([0.75, 0.75, 0.75, 0.75, 0.8, 0.1]), (*phase.shape[:-1], 6))
    pull = jnp.broadcast_to(jnp.array([-0.75, -0.75, -0.75, -0.75, 0.1, 0.8]), (*phase.shape[:-1], 6))
    motor_phase = phase + jnp.arange(4) * (math.pi / 2)
    wave = jnp.concatenate(
        [0.8 * jnp.sin(motor_phase), 0.45 + 0.35 * jnp.sin(phase), 0.45 - 0.35 * jnp.sin(phase)], axis=-1
    )
    return jnp.stack([push, pull, wave])[mode]


def mode_prototypes(start_step: int, horizon: int) -> jax.Array:
    """Noise-free chunks ``[num_modes, H, 6]`` of every behaviour from ``start_step``."""
    steps = start_step + jnp.arange(horizon)
    return jnp.stack([scripted_actions(m, steps) for m in range(len(MODES))])


def classify_modes(chunks: jax.Array, start_step: int = 0) -> np.ndarray:
    """Index of the nearest behaviour prototype (L2 over the whole chunk) for each chunk ``[K, H, 6]``."""
    prototypes = mode_prototypes(start_step, chunks.shape[-2])
    distance = jnp.linalg.norm((chunks[:, None] - prototypes[None]).reshape(chunks.shape[0], len(MODES), -1), axis=-1)
    return np.asarray(jnp.argmin(distance, axis=-1))


def generate_demonstrations(level: levels.Level, config: DemoConfig, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Roll out every behaviour in Kinetix; returns ``obs [N, 679]`` and action chunks ``[N, H, 6]``."""
    episodes = config.episodes_per_mode * len(MODES)
    total = config.episode_steps + horizon
    mode = jnp.repeat(jnp.arange(len(MODES)), config.episodes_per_mode)
    clean = jax.vmap(lambda m: scripted_actions(m, jnp.arange(total), config.wave_period))(mode)
    noise = config.action_noise * jax.random.normal(jax.random.key(config.seed), clean.shape)
    actions = jnp.clip(clean + noise, ACTION_LOW, ACTION_HIGH)  # [E, T + H, 6]
    _, state = levels.reset(level)
    batched = jax.tree.map(lambda x: jnp.broadcast_to(x, (episodes, *x.shape)), state)
    obs = _rollout_obs(batched, jnp.swapaxes(actions[:, : config.episode_steps], 0, 1), level.env_params)
    windows = jnp.arange(config.episode_steps)[:, None] + jnp.arange(horizon)[None]
    chunks = actions[:, windows]  # [E, T, H, 6]
    return np.asarray(obs).reshape(-1, obs.shape[-1]), np.asarray(chunks).reshape(-1, horizon, 6)


@jax.jit
def _rollout_obs(states, actions, env_params):
    """Observations before each action ``[E, T, obs]`` for batched states and actions ``[T, E, 6]``."""
    env = levels.make_env()

    def body(state, action):
        obs = jax.vmap(env.get_obs)(state)
        _, state, *_ = jax.vmap(lambda s, a: env.step_env(jax.random.key(0), s, a, env_params))(state, action)
        return state, obs

    return jnp.swapaxes(jax.lax.scan(body, states, actions)[1], 0, 1)


def mode_consistency(
    policy: FlowPolicy,
    obs: jax.Array,
    num_samples: int = 64,
    num_steps: int = 10,
    inference_delay: int = 2,
    execute_horizon: int = 4,
    max_guidance_weight: float = 5.0,
    schedule: str = "exp",
    seed: int = 0,
) -> dict:
    """Measure multimodality at one observation (at episode start).

    ``naive_fractions``: share of plain samples (one per seed) in each behaviour.
    ``rtc_stay[m]``: share of RTC samples that stay in behaviour ``m`` when the previous chunk is
    ``m``'s chunk, from the same noise (plain samples stay in ``m`` at rate ``naive_fractions[m]``).
    """
    horizon = policy.action_chunk_size
    batch_obs = jnp.broadcast_to(obs, (num_samples, obs.shape[-1]))
    noise = policy.initial_noise(jax.random.key(seed), num_samples)
    naive_modes = classify_modes(policy.action(None, batch_obs, num_steps, noise=noise))
    fractions = np.bincount(naive_modes, minlength=len(MODES)) / num_samples
    rtc_stay = []
    for m, prototype in enumerate(mode_prototypes(0, horizon)):
        prev = jnp.broadcast_to(prototype, (num_samples, *prototype.shape))
        chunks = policy.realtime_action(
            None,
            batch_obs,
            num_steps,
            prev,
            inference_delay,
            protocol.prefix_attention_horizon(execute_horizon, horizon),
            schedule,
            max_guidance_weight,
            noise=noise,
        )
        rtc_stay.append(float(np.mean(classify_modes(chunks) == m)))
    return {
        "naive_fractions": {name: float(f) for name, f in zip(MODES, fractions, strict=True)},
        "naive_modes_hit": int(np.sum(fractions >= 0.1)),
        "rtc_stay": dict(zip(MODES, rtc_stay, strict=True)),
        "settings": {
            "num_samples": num_samples,
            "num_steps": num_steps,
            "inference_delay": inference_delay,
            "execute_horizon": execute_horizon,
            "max_guidance_weight": max_guidance_weight,
            "schedule": schedule,
            "seed": seed,
        },
    }


def build_demo_run(
    out: Path,
    level_paths: tuple[str, ...] = DEMO_LEVELS,
    demo: DemoConfig = DemoConfig(),
    train_config: TrainConfig = TrainConfig(),
    model: ModelConfig = DEMO_MODEL,
    epochs: int = 2,
) -> dict:
    """Generate demonstrations, train one policy per level, save ``epochs`` checkpoints; returns a summary."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    summary: dict = {"levels": {}}
    for level_path in tqdm(level_paths, desc="levels", unit="level"):
        started = time.time()
        level = levels.load_level(levels.resolve_level_path(level_path))
        obs, chunks = generate_demonstrations(level, demo, model.action_chunk_size)
        policy = FlowPolicy(obs.shape[-1], chunks.shape[-1], model, rngs=nnx.Rngs(train_config.seed))
        per_epoch = dataclasses.replace(train_config, steps=train_config.steps // epochs)
        losses: list[float] = []
        for epoch in range(epochs):
            # One cosine cycle per epoch keeps each saved epoch a settled model.
            config = dataclasses.replace(per_epoch, seed=train_config.seed + epoch)
            losses += train(policy, obs, chunks, config, description=f"{level.name} epoch {epoch}")
            training = {
                "command": "python -m rtc.training.demo --out runs/demo",
                "objective": "flow matching (t ~ U(0, 1), x_t = (1 - t) noise + t action, target action - noise)",
                "data": f"{len(obs)} (obs, chunk) pairs from scripted Kinetix demonstrations, behaviours {list(MODES)}",
                "demo_config": demo.to_dict(),
                "train_config": train_config.to_dict(),
                "steps_done": per_epoch.steps * (epoch + 1),
                "final_loss": losses[-1],
            }
            conditioning = simulated_delay_metadata(train_config)
            if conditioning is not None:
                training["training_time_rtc"] = conditioning
                training["command"] += f" --max-simulated-delay {train_config.max_simulated_delay}"
                training["objective"] = f"{training['objective']}; {conditioning['objective']}"
            save_policy(policy, out / str(epoch) / "policies" / level.key, level=level_path, training=training)
        reset_obs, _ = levels.reset(level)
        summary["levels"][level.key] = {
            "samples": len(obs),
            "final_loss": losses[-1],
            "seconds": round(time.time() - started, 1),
            "mode_consistency": mode_consistency(policy, reset_obs),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the committed demo run (multimodal Kinetix demonstrations).")
    parser.add_argument("--out", type=Path, default=DEMO_RUN, help="run folder to (re)write (default: runs/demo)")
    parser.add_argument("--levels", nargs="+", default=list(DEMO_LEVELS), help="level JSON files")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="training steps per level")
    parser.add_argument("--episodes-per-mode", type=int, default=DemoConfig.episodes_per_mode)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-simulated-delay",
        type=int,
        default=None,
        help="train for training-time RTC with delays 0..D (p(d) proportional to exp(-d)); default: plain training",
    )
    args = parser.parse_args(argv)
    summary = build_demo_run(
        args.out,
        tuple(args.levels),
        DemoConfig(episodes_per_mode=args.episodes_per_mode, seed=args.seed),
        TrainConfig(steps=args.steps, seed=args.seed, max_simulated_delay=args.max_simulated_delay),
    )
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
