"""Results of closed-loop rollouts: the ``Rollout`` record and its assembly from the program's segments."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from rtc.errors import RTCError
from rtc.experiments.rollout.program import Carry
from rtc.experiments.settings import RolloutSettings
from rtc.io import levels


@dataclasses.dataclass(frozen=True, eq=False)
class Rollout:
    """Numpy results of ``num_episodes`` episodes (leading axis: episode; T = ``episode_steps``).

    Always: ``actions [E, T, A]`` (the policy's executed actions, before action noise),
    ``applied_actions`` (with noise, what the environment got), ``rewards [E, T]`` (0 after the end),
    ``alive [E, T]`` (step inside the episode), ``jumps [E, T]`` (``||a_t - a_{t-1}||`` at each step where
    the executed actions switch to a new chunk, ``t = j s + d >= 1``; NaN elsewhere), ``returns``,
    ``solved``, ``lengths`` ``[E]``, ``first_chunk [E, H, A]`` and ``chunk_starts [K]`` (``0, s, 2s, ...``).
    With ``record``: ``chunk_obs [E, K, obs]``, ``prev_chunks``, ``chunks`` ``[E, K, H, A]`` (the inputs and
    output of every block's sampling) and ``states`` (environment state after each step, ``[E, T, ...]``).
    """

    settings: RolloutSettings
    level: levels.Level
    actions: np.ndarray
    applied_actions: np.ndarray
    rewards: np.ndarray
    alive: np.ndarray
    jumps: np.ndarray
    returns: np.ndarray
    solved: np.ndarray
    lengths: np.ndarray
    jump_sums: np.ndarray
    jump_counts: np.ndarray
    step_sums: np.ndarray  # [E] sums of ||a_t - a_(t-1)|| over steps t >= 1 that are not switches
    step_counts: np.ndarray
    first_chunk: np.ndarray
    chunk_starts: np.ndarray
    chunk_obs: np.ndarray | None = None
    prev_chunks: np.ndarray | None = None
    chunks: np.ndarray | None = None
    states: Any = None

    @property
    def truncated(self) -> np.ndarray:
        """``[E]`` episodes that reached the step limit unsolved: ``episode_steps``, or the level's own
        ``max_timesteps`` when that is smaller. They count as unsolved (``solved`` is false); an episode that fails
        on the very step the limit is reached is counted here too (the record does not tell the two apart)."""
        limit = min(int(self.settings.episode_steps), int(self.level.env_params.max_timesteps))
        return ~np.asarray(self.solved, bool) & (np.asarray(self.lengths) >= limit)

    @property
    def recorded(self) -> bool:
        return self.chunks is not None

    def summary(self) -> dict[str, float]:
        """Solve rate, mean return, mean boundary jump (over every switch of every episode where it is defined;
        NaN if none is), mean step size away from switches (the baseline for "smooth"), their ratio, mean length.
        """
        count, steps = int(self.jump_counts.sum()), int(self.step_counts.sum())
        jump = float(self.jump_sums.sum() / count) if count else float("nan")
        step = float(self.step_sums.sum() / steps) if steps else float("nan")
        return {
            "solve_rate": float(self.solved.mean()),
            "mean_return": float(self.returns.mean()),
            "mean_boundary_jump": jump,
            "mean_step_size": step,
            "jump_to_step_ratio": jump / step if count and steps and step > 0 else float("nan"),
            "mean_length": float(self.lengths.mean()),
            "episodes": len(self.returns),
            "truncated": int(self.truncated.sum()),
        }

    def episode_state(self, episode: int, step: int) -> Any:
        """Environment state after ``step`` steps (0 = reset) of ``episode`` (needs ``record``)."""
        if self.states is None:
            raise RTCError("this rollout kept no states; run it with record=True")
        if step == 0:
            return levels.reset(self.level)[1]
        return jax.tree.map(lambda x: x[episode, step - 1], self.states)


_FILL = {"alive": False, "goal": False, "jumps": np.nan}


def pad_steps(key: str, value: np.ndarray, total: int) -> np.ndarray:
    """Extend the step axis (1) to ``total`` with what steps after an episode's end hold."""
    missing = total - value.shape[1]
    if missing <= 0:
        return value[:, :total]
    widths = [(0, 0), (0, missing)] + [(0, 0)] * (value.ndim - 2)
    if key == "states":
        return np.pad(value, widths, mode="edge")
    return np.pad(value, widths, constant_values=_FILL.get(key, 0))


def assemble(
    settings: RolloutSettings, level: levels.Level, carry: Carry, first: jax.Array, pieces: list[dict], record: bool
) -> Rollout:
    """One ``Rollout`` from the final carry, the first chunks and the segments' outputs (cut to the real episodes)."""
    count, total = settings.num_episodes, settings.episode_steps
    joined = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1)[:count], *pieces)
    joined = {key: jax.tree.map(lambda x, key=key: pad_steps(key, x, total), value) for key, value in joined.items()}
    carry = jax.device_get(carry)
    starts = np.arange(0, total, settings.execute_horizon)
    extra: dict[str, Any] = {}
    if record:
        extra = {
            "chunk_obs": joined["obs"][:, starts],
            "prev_chunks": joined["prev_chunks"][:, starts],
            "chunks": joined["chunks"][:, starts],
            "states": joined["states"],
        }
    return Rollout(
        settings=settings,
        level=level,
        actions=joined["actions"],
        applied_actions=joined["applied_actions"],
        rewards=joined["rewards"],
        alive=joined["alive"],
        jumps=joined["jumps"],
        returns=np.asarray(carry.total_return)[:count],
        solved=np.asarray(carry.solved)[:count],
        lengths=np.asarray(carry.length)[:count],
        jump_sums=np.asarray(carry.jump_sum)[:count],
        jump_counts=np.asarray(carry.jump_count)[:count],
        step_sums=np.asarray(carry.step_sum)[:count],
        step_counts=np.asarray(carry.step_count)[:count],
        first_chunk=np.asarray(first)[:count],
        chunk_starts=starts,
        **extra,
    )
