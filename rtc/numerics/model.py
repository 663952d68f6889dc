"""The flow policy (flax nnx) with the reference architecture and its sampling methods.

Time convention: t = 0 is pure noise, t = 1 is data (``x_t = (1 - t) * noise + t * action``).
Parameter names and shapes match the paper's checkpoints exactly (see ``rtc.io.checkpoints``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from rtc.errors import SettingsError
from rtc.numerics import sampler
from rtc.numerics.sampler import SCHEDULES, TokenTimes, get_prefix_weights, schedule_index

__all__ = ["SCHEDULES", "FlowPolicy", "ModelConfig", "TokenTimes", "get_prefix_weights", "schedule_index"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of a ``FlowPolicy``; the defaults are the paper's (its runs save no config)."""

    channel_dim: int = 256
    channel_hidden_dim: int = 512
    token_hidden_dim: int = 64
    num_layers: int = 4
    action_chunk_size: int = 8

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"ModelConfig.{field.name} must be a positive integer, got {value!r}")
        if self.channel_dim % 2:
            raise SettingsError(f"ModelConfig.channel_dim must be even (sin/cos embedding), got {self.channel_dim}")

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def sinusoidal_time_embedding(time: jax.Array, dim: int) -> jax.Array:
    """Sin/cos embedding of flow time ``[B] -> [B, dim]`` with periods from 4e-3 to 4."""
    min_period, max_period = 4e-3, 4.0
    fraction = jnp.linspace(0.0, 1.0, dim // 2)
    period = min_period * (max_period / min_period) ** fraction
    # The reference's order of operations (reciprocal, then times 2 pi): ``2 pi / period`` rounds 33 of
    # 128 float32 frequencies differently and moves v_t by up to 1.7e-5 at large angles.
    frequency = (1.0 / period) * 2 * math.pi
    angle = jnp.dot(time[:, None], frequency[None, :], precision=jax.lax.Precision.HIGHEST)
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


def _modulate(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    return x * (1 + scale) + shift


def _per_token(modulation: jax.Array, index: jax.Array | None) -> jax.Array:
    """An adaLN modulation as ``[B, H or 1, k C]``: one per example (``[B, k C]``, broadcast over the chunk, exactly
    the reference's ``[:, None]``) or one per time value (``[B, K, k C]``) gathered per token by ``index [B, H]``."""
    if index is None:
        return modulation[:, None]
    return jnp.take_along_axis(modulation, index[..., None], axis=1)


class MixerBlock(nnx.Module):
    """Token mixing over the chunk, then channel mixing, both adaLN-modulated by the time embedding."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c, h = config.channel_dim, config.action_chunk_size
        self.token_mix_in = nnx.Linear(h, config.token_hidden_dim, use_bias=False, rngs=rngs)
        self.token_mix_out = nnx.Linear(config.token_hidden_dim, h, use_bias=False, rngs=rngs)
        self.channel_mix_in = nnx.Linear(c, config.channel_hidden_dim, use_bias=False, rngs=rngs)
        self.channel_mix_out = nnx.Linear(config.channel_hidden_dim, c, use_bias=False, rngs=rngs)
        self.norm_1 = nnx.LayerNorm(c, use_scale=False, use_bias=False, rngs=rngs)
        self.norm_2 = nnx.LayerNorm(c, use_scale=False, use_bias=False, rngs=rngs)
        zeros = nnx.initializers.zeros_init()
        self.adaln_1 = nnx.Linear(c, 3 * c, kernel_init=zeros, rngs=rngs)
        self.adaln_2 = nnx.Linear(c, 3 * c, kernel_init=zeros, rngs=rngs)

    def __call__(self, x: jax.Array, time_emb: jax.Array, token_index: jax.Array | None = None) -> jax.Array:
        """``time_emb`` is ``[B, C]`` (one flow time per example) or ``[B, K, C]`` with ``token_index [B, H]`` (per
        token: ``TokenTimes``)."""
        scale1, shift1, gate1 = jnp.split(_per_token(self.adaln_1(time_emb), token_index), 3, axis=-1)
        scale2, shift2, gate2 = jnp.split(_per_token(self.adaln_2(time_emb), token_index), 3, axis=-1)
        y = _modulate(self.norm_1(x), scale1, shift1)
        y = jnp.swapaxes(y, 1, 2)
        y = self.token_mix_out(jax.nn.gelu(self.token_mix_in(y)))
        x = x + gate1 * jnp.swapaxes(y, 1, 2)
        y = _modulate(self.norm_2(x), scale2, shift2)
        y = self.channel_mix_out(jax.nn.gelu(self.channel_mix_in(y)))
        return x + gate2 * y


class FlowPolicy(nnx.Module):
    """MLP-mixer velocity field ``v(obs, x_t, t)`` over an action chunk, with RTC sampling."""

    def __init__(self, obs_dim: int, action_dim: int, config: ModelConfig = ModelConfig(), *, rngs: nnx.Rngs):
        if obs_dim < 1 or action_dim < 1:
            raise SettingsError(f"obs_dim and action_dim must be positive, got {obs_dim} and {action_dim}")
        c = config.channel_dim
        self.config = config
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.in_proj = nnx.Linear(action_dim + obs_dim, c, rngs=rngs)
        self.mlp_stack = nnx.List([MixerBlock(config, rngs=rngs) for _ in range(config.num_layers)])
        self.time_mlp = nnx.Sequential(nnx.Linear(c, c, rngs=rngs), nnx.swish, nnx.Linear(c, c, rngs=rngs), nnx.swish)
        self.final_norm = nnx.LayerNorm(c, use_scale=False, use_bias=False, rngs=rngs)
        self.final_adaln = nnx.Linear(c, 2 * c, kernel_init=nnx.initializers.zeros_init(), rngs=rngs)
        self.out_proj = nnx.Linear(c, action_dim, rngs=rngs)
        # The largest delay this policy was trained to take as a clean prefix (training-time RTC,
        # ``rtc.training.flow.TrainConfig.max_simulated_delay``); None: trained without it. Saved in and read from
        # the checkpoint's training metadata (``rtc.io.checkpoints``); a paper checkpoint is never trained for it.
        self.max_simulated_delay: int | None = None

    @property
    def action_chunk_size(self) -> int:
        return self.config.action_chunk_size

    def __call__(self, obs: jax.Array, x_t: jax.Array, time: jax.Array | float | TokenTimes) -> jax.Array:
        """Velocity ``[B, H, A]`` for observations ``[B, obs_dim]``, states ``[B, H, A]`` and flow time: a scalar or
        ``[B]`` (one time for the whole chunk, the paper's model), or per action token, ``[B, H]`` or
        ``TokenTimes`` (as training-time RTC feeds its frozen prefix at time 1). A scalar or ``[B]`` time computes
        exactly what the reference does (same operations, bit-identical); a per-token time modulates each token
        with the adaLN scale, shift and gate of its own time."""
        batch, horizon = x_t.shape[:2]
        index = None
        if not isinstance(time, TokenTimes) and jnp.ndim(time) == 2:
            time = TokenTimes(time, jnp.broadcast_to(jnp.arange(horizon), (batch, horizon)))
        if isinstance(time, TokenTimes):
            values = jnp.asarray(time.values, dtype=x_t.dtype)
            values = jnp.broadcast_to(values, (batch, values.shape[-1]))
            flat = sinusoidal_time_embedding(values.reshape(-1), self.config.channel_dim)
            time_emb = self.time_mlp(flat).reshape(batch, values.shape[-1], -1)
            index = jnp.broadcast_to(jnp.asarray(time.index, jnp.int32), (batch, horizon))
        else:
            time = jnp.broadcast_to(jnp.asarray(time, dtype=x_t.dtype), (batch,))
            time_emb = self.time_mlp(sinusoidal_time_embedding(time, self.config.channel_dim))
        obs_tokens = jnp.broadcast_to(obs[:, None, :], (batch, x_t.shape[1], obs.shape[-1]))
        x = self.in_proj(jnp.concatenate([x_t, obs_tokens], axis=-1))
        for block in self.mlp_stack:
            x = block(x, time_emb, index)
        scale, shift = jnp.split(_per_token(self.final_adaln(time_emb), index), 2, axis=-1)
        return self.out_proj(_modulate(self.final_norm(x), scale, shift))

    # ----------------------------------------------------------------------------------------
    # Sampling. Each method splits the module and calls a jitted pure function from rtc.numerics.sampler,
    # so settings passed as arrays (delay, horizon, schedule, weight) never trigger a recompile.

    def action(
        self,
        rng: jax.Array,
        obs: jax.Array,
        num_steps: int,
        return_tracking: bool = False,
        *,
        noise: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Plain ("naive") Euler sampling of a chunk ``[B, H, A]`` from ``noise ~ N(0, I)`` drawn with ``rng``.

        Pass ``noise`` to start from given noise instead (``rng`` is then unused).
        """
        graphdef, state = nnx.split(self)
        noise = self.initial_noise(rng, obs.shape[0]) if noise is None else noise
        action, tracked = _naive_jit(graphdef, state, obs, noise, num_steps=num_steps, track=return_tracking)
        return (action, tracked) if return_tracking else action

    def realtime_action(
        self,
        rng: jax.Array,
        obs: jax.Array,
        num_steps: int,
        prev_action_chunk: jax.Array,
        inference_delay: int | jax.Array,
        prefix_attention_horizon: int | jax.Array,
        prefix_attention_schedule: str | int | jax.Array,
        max_guidance_weight: float | jax.Array,
        return_tracking: bool = False,
        *,
        noise: jax.Array | None = None,
        jacobian_free: bool = False,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Real-time chunking: inpaint the new chunk onto ``prev_action_chunk`` with guided Euler steps.

        ``inference_delay`` actions are frozen (weight 1), the prefix up to ``prefix_attention_horizon``
        is guided with weights that decay by ``prefix_attention_schedule`` (exp, linear, ones, zeros),
        and the guidance weight is clipped at ``max_guidance_weight``. With the same ``rng`` (or ``noise``)
        the starting noise equals that of ``action``, so RTC and plain samples compare fairly.
        ``jacobian_free=True`` guides with the weighted error itself instead of its vector-Jacobian
        product (no backward pass; see ``sampler.realtime_sample``); it is compiled separately.
        """
        graphdef, state = nnx.split(self)
        noise = self.initial_noise(rng, obs.shape[0]) if noise is None else noise
        settings = sampler.GuidanceSettings.create(
            inference_delay,
            prefix_attention_horizon,
            prefix_attention_schedule,
            max_guidance_weight,
            chunk_size=self.config.action_chunk_size,
        )
        action, tracked = _realtime_jit(
            graphdef,
            state,
            obs,
            noise,
            prev_action_chunk,
            settings,
            num_steps=num_steps,
            track=return_tracking,
            jacobian_free=bool(jacobian_free),
        )
        return (action, tracked) if return_tracking else action

    def training_time_action(
        self,
        rng: jax.Array,
        obs: jax.Array,
        num_steps: int,
        prev_action_chunk: jax.Array,
        inference_delay: int | jax.Array,
        return_tracking: bool = False,
        *,
        noise: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        """Training-time RTC: Euler sampling with ``prev_action_chunk[:, :inference_delay]`` fed clean at flow time
        1 and kept exactly in the result; no guidance, no backward pass (``sampler.training_time_sample``). Meant
        for a policy trained with simulated delays (``max_simulated_delay``; ``rtc.numerics.methods.check_method``
        refuses others). Same starting noise as ``action`` for the same ``rng`` (or ``noise``)."""
        graphdef, state = nnx.split(self)
        noise = self.initial_noise(rng, obs.shape[0]) if noise is None else noise
        delay = jnp.asarray(inference_delay, jnp.int32)
        action, tracked = _training_time_jit(
            graphdef, state, obs, noise, prev_action_chunk, delay, num_steps=num_steps, track=return_tracking
        )
        return (action, tracked) if return_tracking else action

    def initial_noise(self, rng: jax.Array, batch: int) -> jax.Array:
        """The starting noise ``[batch, H, A]``, one ``jax.random.normal`` call as in the reference."""
        return jax.random.normal(rng, (batch, self.config.action_chunk_size, self.action_dim))


def velocity_fn(graphdef: nnx.GraphDef, state: nnx.State, obs: jax.Array) -> sampler.VelocityFn:
    """A pure ``(x_t, t) -> v`` for one observation batch, rebuilt from a split module."""
    model = nnx.merge(graphdef, state)

    def velocity(x_t: jax.Array, t: jax.Array) -> jax.Array:
        return model(obs, x_t, t)

    return velocity


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "track"))
def _naive_jit(graphdef: Any, state: Any, obs: jax.Array, noise: jax.Array, *, num_steps: int, track: bool):
    return sampler.naive_sample(velocity_fn(graphdef, state, obs), noise, num_steps, track=track)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "track"))
def _training_time_jit(graphdef, state, obs, noise, prev_action_chunk, inference_delay, *, num_steps, track):
    velocity = velocity_fn(graphdef, state, obs)
    return sampler.training_time_sample(velocity, noise, prev_action_chunk, inference_delay, num_steps, track=track)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "track", "jacobian_free"))
def _realtime_jit(
    graphdef: Any,
    state: Any,
    obs: jax.Array,
    noise: jax.Array,
    prev_action_chunk: jax.Array,
    settings: sampler.GuidanceSettings,
    *,
    num_steps: int,
    track: bool,
    jacobian_free: bool = False,
):
    velocity = velocity_fn(graphdef, state, obs)
    return sampler.realtime_sample(
        velocity, noise, prev_action_chunk, settings, num_steps, track=track, jacobian_free=jacobian_free
    )
