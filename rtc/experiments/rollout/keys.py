"""Random numbers of closed-loop rollouts, public so tests and inspections regenerate exactly what a rollout used.

Episode e uses ``fold_in(key(seed), e)`` (independent of the episode count), split into a sampling key and an
environment key; block b's candidate noise is ``methods.candidate_noise(fold_in(sampling_key, b), (1, H, A), N)``
(b = 0 is the first plain chunk, b = j + 1 is block j); step t's action noise is ``normal(fold_in(env_key, t),
(A,))``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtc.numerics import methods


def episode_keys(seed: int, count: int) -> tuple[jax.Array, jax.Array]:
    """``(sampling keys [count], environment keys [count])`` of episodes ``0..count-1``."""
    base = jax.random.key(seed)
    pairs = [jax.random.split(jax.random.fold_in(base, e)) for e in range(count)]
    return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


def noise_of_block(sample_key: jax.Array, block: jax.Array | int, num_candidates: int, shape: tuple[int, int]):
    """Candidate noise ``[N, H, A]`` of ``block`` from one episode's sampling key (traceable)."""
    rng = jax.random.fold_in(sample_key, block)
    return methods.candidate_noise(rng, (1, *shape), num_candidates)[:, 0]


def noise_of_step(env_key: jax.Array, step: jax.Array | int, action_dim: int) -> jax.Array:
    """Unit action noise ``[A]`` of ``step`` from one episode's environment key (traceable)."""
    return jax.random.normal(jax.random.fold_in(env_key, step), (action_dim,))


def block_noise(seed: int, episode: int, block: int, num_candidates: int, horizon: int, action_dim: int) -> jax.Array:
    """Candidate noise ``[N, 1, H, A]`` of ``block`` (0 = first plain chunk, j + 1 = block j) of ``episode``."""
    sample_keys, _ = episode_keys(seed, episode + 1)
    return noise_of_block(sample_keys[episode], block, num_candidates, (horizon, action_dim))[:, None]


def action_noise(seed: int, episode: int, step: int, action_dim: int, scale: float) -> jax.Array:
    """The environment's action noise ``[A]`` at ``step`` of ``episode``."""
    _, env_keys = episode_keys(seed, episode + 1)
    return scale * noise_of_step(env_keys[episode], step, action_dim)
