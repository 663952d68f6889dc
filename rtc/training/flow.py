"""Flow-matching training of a ``FlowPolicy`` on (observation, action chunk) pairs.

With ``TrainConfig.max_simulated_delay = D`` it trains for training-time RTC (Black et al. 2025, arXiv
2512.05964): each example gets a delay ``d`` in ``0..D``; its first ``d`` action tokens are given clean (flow time
1, ``x_t = action`` there) and left out of the loss, which averages the squared error over the other tokens. The
delay distribution (``delay_distribution``) is ``exp`` by default, ``p(d) proportional to exp(-d)``, as the public
Kinetix code of the training-time RTC paper samples it (it draws ``d`` below its ``simulated_delay = D + 1``);
``uniform`` (every ``d`` in ``0..D`` alike, LeRobot's ``UNIFORM``) is offered too. The trained policy records
``max_simulated_delay``, and ``rtc.io.checkpoints.save_policy`` writes it into the checkpoint's training metadata.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from rtc.errors import RTCError, SettingsError
from rtc.numerics.model import FlowPolicy, TokenTimes

DELAY_DISTRIBUTIONS: tuple[str, ...] = ("exp", "uniform")
DEFAULT_MAX_SIMULATED_DELAY = 4  # the paper's simulated benchmark sweeps d = 0..4


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
    # Training-time RTC: the largest simulated delay D (None: plain flow matching) and how d in 0..D is drawn.
    max_simulated_delay: int | None = None
    delay_distribution: str = "exp"

    def __post_init__(self) -> None:
        if self.delay_distribution not in DELAY_DISTRIBUTIONS:
            raise SettingsError(
                f"delay_distribution={self.delay_distribution!r} is not accepted; choose one of "
                f"{', '.join(DELAY_DISTRIBUTIONS)}"
            )
        delay = self.max_simulated_delay
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int) or delay < 1):
            raise SettingsError(f"max_simulated_delay={delay!r} is not accepted; use None or an integer >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def delay_probabilities(max_delay: int, distribution: str = "exp") -> np.ndarray:
    """``p(d)`` for ``d = 0..max_delay``: ``exp`` gives ``exp(-d)`` normalised, ``uniform`` ``1 / (max_delay + 1)``."""
    if distribution not in DELAY_DISTRIBUTIONS:
        raise SettingsError(f"delay_distribution={distribution!r} is not accepted; choose one of exp, uniform")
    d = np.arange(max_delay + 1, dtype=np.float64)
    weights = np.exp(-d) if distribution == "exp" else np.ones_like(d)
    return weights / weights.sum()


def simulated_delay_metadata(config: TrainConfig) -> dict | None:
    """What a checkpoint records about training-time RTC training (None when trained without it)."""
    if config.max_simulated_delay is None:
        return None
    return {
        "max_delay": config.max_simulated_delay,
        "distribution": config.delay_distribution,
        "probabilities": [
            round(float(p), 6) for p in delay_probabilities(config.max_simulated_delay, config.delay_distribution)
        ],
        "objective": "first d action tokens clean at time 1, out of the loss (Black et al. 2025, arXiv 2512.05964)",
    }


def flow_matching_loss(policy: FlowPolicy, obs: jax.Array, actions: jax.Array, rng: jax.Array) -> jax.Array:
    """MSE between ``policy(obs, x_t, t)`` and ``actions - noise`` with ``t ~ U(0, 1)`` per example."""
    time_rng, noise_rng = jax.random.split(rng)
    time = jax.random.uniform(time_rng, (actions.shape[0],))
    noise = jax.random.normal(noise_rng, actions.shape)
    x_t = (1 - time[:, None, None]) * noise + time[:, None, None] * actions
    velocity = policy(obs, x_t, time)
    return jnp.mean((velocity - (actions - noise)) ** 2)


def prefix_conditioned_loss(
    policy: FlowPolicy, obs: jax.Array, actions: jax.Array, rng: jax.Array, probabilities: jax.Array
) -> jax.Array:
    """Training-time RTC's loss: ``d ~ probabilities`` per example, tokens ``i < d`` clean at time 1 and out of the
    loss, ``t ~ U(0, 1)`` elsewhere; mean squared error over the remaining tokens."""
    time_rng, noise_rng = jax.random.split(rng)
    delay_rng = jax.random.fold_in(rng, 2)
    batch, horizon = actions.shape[:2]
    time = jax.random.uniform(time_rng, (batch,))
    noise = jax.random.normal(noise_rng, actions.shape)
    delay = jax.random.choice(delay_rng, probabilities.shape[0], (batch,), p=probabilities)
    frozen = jnp.arange(horizon)[None, :] < delay[:, None]  # [B, H]
    token_time = jnp.where(frozen, 1.0, time[:, None])
    x_t = (1 - token_time[..., None]) * noise + token_time[..., None] * actions
    # two distinct times per example (t and 1): embedded and modulated once each, gathered per token
    times = TokenTimes(jnp.stack([time, jnp.ones_like(time)], axis=-1), frozen.astype(jnp.int32))
    velocity = policy(obs, x_t, times)
    kept = jnp.broadcast_to(~frozen[..., None], actions.shape).astype(actions.dtype)
    return jnp.sum(kept * (velocity - (actions - noise)) ** 2) / jnp.maximum(jnp.sum(kept), 1.0)


@nnx.jit
def _train_step(policy: FlowPolicy, optimizer: nnx.Optimizer, obs: jax.Array, actions: jax.Array, rng: jax.Array):
    loss, grads = nnx.value_and_grad(flow_matching_loss)(policy, obs, actions, rng)
    optimizer.update(policy, grads)
    return loss


@nnx.jit
def _prefix_train_step(
    policy: FlowPolicy,
    optimizer: nnx.Optimizer,
    obs: jax.Array,
    actions: jax.Array,
    rng: jax.Array,
    probabilities: jax.Array,
):
    loss, grads = nnx.value_and_grad(prefix_conditioned_loss)(policy, obs, actions, rng, probabilities)
    optimizer.update(policy, grads)
    return loss


def train(
    policy: FlowPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    config: TrainConfig = TrainConfig(),
    description: str = "training",
) -> list[float]:
    """Train ``policy`` in place on ``obs [N, obs_dim]`` and ``actions [N, H, A]``; returns the loss curve.

    With ``config.max_simulated_delay`` it trains for training-time RTC (module docstring) and sets
    ``policy.max_simulated_delay``, so the saved checkpoint says so."""
    if obs.shape[0] != actions.shape[0]:
        raise RTCError(f"obs has {obs.shape[0]} rows but actions has {actions.shape[0]}")
    max_delay = config.max_simulated_delay
    if max_delay is not None and max_delay >= policy.action_chunk_size:
        raise SettingsError(
            f"max_simulated_delay={max_delay} is out of range; accepted: 1..{policy.action_chunk_size - 1} "
            "(below the chunk size, so every example keeps a token in the loss)"
        )
    probabilities = (
        None
        if max_delay is None
        else jnp.asarray(delay_probabilities(max_delay, config.delay_distribution), jnp.float32)
    )
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
            batch_obs, batch_actions, key = obs_device[index], actions_device[index], jax.random.fold_in(rng, step)
            if probabilities is None:
                loss = _train_step(policy, optimizer, batch_obs, batch_actions, key)
            else:
                loss = _prefix_train_step(policy, optimizer, batch_obs, batch_actions, key, probabilities)
            if step % 50 == 0 or step == config.steps - 1:
                losses.append(float(loss))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if max_delay is not None:
        policy.max_simulated_delay = max_delay
    return losses


def train_training_time_rtc(
    policy: FlowPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    config: TrainConfig = TrainConfig(),
    max_delay: int = DEFAULT_MAX_SIMULATED_DELAY,
    distribution: str = "exp",
    description: str = "training (training-time RTC)",
) -> tuple[list[float], dict]:
    """Train ``policy`` for training-time RTC on the same data and optimiser settings as ``train`` (``config`` with
    simulated delays ``0..max_delay`` drawn by ``distribution``); returns the loss curve and the metadata to pass to
    ``save_policy(..., training={..., "training_time_rtc": metadata})`` (``save_policy`` records the delay anyway).

    A world that trains a plain policy can train its training-time twin from the same demonstrations and seed::

        twin = FlowPolicy(obs_dim, action_dim, model, rngs=nnx.Rngs(config.seed))
        losses, metadata = train_training_time_rtc(twin, obs, chunks, config)
        save_policy(twin, out / str(epoch) / "policies" / key, level=..., training={**training,
                    "training_time_rtc": metadata})
    """
    conditioned = dataclasses.replace(config, max_simulated_delay=max_delay, delay_distribution=distribution)
    losses = train(policy, obs, actions, conditioned, description)
    metadata = simulated_delay_metadata(conditioned)
    assert metadata is not None
    return losses, metadata
