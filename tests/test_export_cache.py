"""The physics step kept on disk as a traced program gives exactly what tracing it anew gives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc.experiments import protocol
from rtc.io import export_cache, levels


@pytest.fixture
def cache_dir(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    saved = dict(export_cache._loaded)
    export_cache._loaded.clear()
    yield tmp_path
    jax.config.update("jax_compilation_cache_dir", before)
    export_cache._loaded.clear()
    export_cache._loaded.update(saved)


def test_advance_from_the_exported_program_equals_the_traced_one(shared_worlds, cache_dir):
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    _, state = levels.reset(level)
    actions = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 6)), jnp.float32)
    args = (state, actions, jnp.asarray(5, jnp.int32), level.env_params)
    expected_obs, expected_state = protocol._advance_jit(*args)

    exported_obs, exported_state = protocol.advance(level, state, actions, 5)  # traces and saves the program
    (saved,) = (cache_dir / "exported").glob("advance_flat-*.jaxexport")
    export_cache._loaded.clear()
    loaded_obs, loaded_state = protocol.advance(level, state, actions, 5)  # loads it from disk

    for obs, env_state in ((exported_obs, exported_state), (loaded_obs, loaded_state)):
        np.testing.assert_array_equal(obs, expected_obs)
        jax.tree.map(np.testing.assert_array_equal, env_state, expected_state)
    assert saved.stat().st_size > 0


def test_a_damaged_program_file_is_replaced(shared_worlds, cache_dir):
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    _, state = levels.reset(level)
    actions = jnp.zeros((8, 6))
    expected, _ = protocol.advance(level, state, actions, 2)
    (saved,) = (cache_dir / "exported").glob("advance_flat-*.jaxexport")
    saved.write_bytes(b"not a program")
    export_cache._loaded.clear()
    obs, _ = protocol.advance(level, state, actions, 2)
    np.testing.assert_array_equal(obs, expected)
    assert saved.read_bytes() != b"not a program"


def test_the_key_changes_with_shapes_and_code():
    def f(x):
        return [x + 1]

    def g(x):
        return [x + 2]

    a, b = [jnp.zeros(3)], [jnp.zeros(4)]
    assert export_cache.program_key(f, a, [f], []) == export_cache.program_key(f, a, [f], [])
    assert export_cache.program_key(f, a, [f], []) != export_cache.program_key(f, b, [f], [])
    assert export_cache.program_key(f, a, [f], []) != export_cache.program_key(f, a, [g], [])
