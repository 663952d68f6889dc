"""Flow-matching training of a ``FlowPolicy`` on (observation, action chunk) pairs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rtc.errors import RTCError
from rtc.numerics.model import FlowPolicy


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings for ``train``."""

    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def flow_matching_loss(policy: FlowPolicy, obs: jax.Array, actions: jax.Array, rng: jax.Array) -> jax.Array:
    """MSE between ``policy(obs, x_t, t)`` and ``actions - noise`` with ``t ~ U(0, 1)`` per example."""
    time_rng, noise_rng = jax.random.split(rng)
    time = jax.random.uniform(time_rng, (actions.shape[0],))
    noise = jax.random.normal(noise_rng, actions.shape)
    x_t = (1 - time[:, None, None]) * noise + time[:, None, None] * actions
    velocity = policy(obs, x_t, time)
    return jnp.mean((velocity - (actions - noise)) ** 2)


@nnx.jit
def _train_step(policy: FlowPolicy, optimizer: nnx.Optimizer, obs: jax.Array, actions: jax.Array, rng: jax.Array):
    loss, grads = nnx.value_and_grad(flow_matching_loss)(policy, obs, actions, rng)
    optimizer.update(policy, grads)
    return loss


def train(
    policy: FlowPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    config: TrainConfig = TrainConfig(),
    description: str = "training",
) -> list[float]:
    """Train ``policy`` in place on ``obs [N, obs_dim]`` and ``actions [N, H, A]``; returns the loss curve."""
    if obs.shape[0] != actions.shape[0]:
        raise RTCError(f"obs has {obs.shape[0]} rows but actions has {actions.shape[0]}")
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, max(config.steps, config.warmup_steps + 1)
    )
    tx = optax.chain(
        optax.clip_by_global_norm(config.grad_clip), optax.adamw(schedule, weight_decay=config.weight_decay)
    )
    optimizer = nnx.Optimizer(policy, tx, wrt=nnx.Param)
    rng = jax.random.key(config.seed)
    data_rng = np.random.default_rng(config.seed)
    obs_device, actions_device = jnp.asarray(obs), jnp.asarray(actions)
    losses = []
    with tqdm(range(config.steps), desc=description, unit="step") as bar:
        for step in bar:
            index = jnp.asarray(data_rng.integers(0, obs.shape[0], config.batch_size))
            loss = _train_step(
                policy, optimizer, obs_device[index], actions_device[index], jax.random.fold_in(rng, step)
            )
            if step % 50 == 0 or step == config.steps - 1:
                losses.append(float(loss))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses
