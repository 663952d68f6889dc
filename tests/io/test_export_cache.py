"""Programs kept on disk (the physics step, the same-observation inspection) give exactly what tracing them anew
gives."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc.experiments import pipeline, protocol
from rtc.io import export_cache, levels
from tests.conftest import random_policy


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


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
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


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
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


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_the_same_observation_inspection_from_disk_equals_the_traced_one(shared_worlds, cache_dir, monkeypatch):
    policy = random_policy(obs_dim=levels.OBS_DIM)
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    settings = pipeline.RTCSettings(num_flow_steps=4, seed=3, batch_size=2, prefix_attention_schedule="linear")
    with monkeypatch.context() as patch:
        patch.setattr(export_cache, "cache_folder", lambda: None)  # the traced path, as without a cache
        expected = pipeline.inspect(policy, level, settings)

    exported = pipeline.inspect(policy, level, settings)  # traces and saves the program
    (saved,) = (cache_dir / "exported").glob("_same_observation_program-*.jaxexport")
    export_cache._loaded.clear()
    loaded = pipeline.inspect(policy, level, settings)  # loads it from disk
    for result in (exported, loaded):
        for name in ("tracked", "plain"):
            jax.tree.map(np.testing.assert_array_equal, getattr(result, name), getattr(expected, name))
        np.testing.assert_array_equal(result.obs, expected.obs)
        np.testing.assert_array_equal(result.first_chunk, expected.first_chunk)
        assert result.summary == expected.summary

    # Settings and the seed are inputs of the program: new values reuse it.
    other = dataclasses.replace(settings, seed=5, inference_delay=1, execute_horizon=3, max_guidance_weight=2.0)
    pipeline.inspect(policy, level, other)
    assert list((cache_dir / "exported").glob("_same_observation_program-*.jaxexport")) == [saved]


def test_jax_cache_entries_are_written_whole(tmp_path):
    """jax writes its compilation cache in place; ours renames a finished file, so no reader (nor a killed writer)
    ever leaves or sees half an entry. Fails loudly when jax's internal changes shape."""
    import inspect

    from jax._src import lru_cache

    from rtc.io import export_cache

    export_cache.make_jax_cache_writes_atomic()
    assert lru_cache.LRUCache.put.rtc_atomic
    cache = lru_cache.LRUCache(str(tmp_path), max_size=-1)
    assert not cache.eviction_enabled
    cache.put("k1", b"x" * 1000)
    cache.put("k1", b"other")  # an existing entry is kept, as jax does
    assert cache.get("k1") == b"x" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"k1{lru_cache._CACHE_SUFFIX}"]  # no partial file left
    # jax 0.9's own put writes in place: if this changes, revisit make_jax_cache_writes_atomic
    original = inspect.getsource(lru_cache.LRUCache.get)
    assert "_CACHE_SUFFIX" in original and "read_bytes" in original


@functools.partial(jax.jit, static_argnames=("k",))
def _scaled(x, k):
    return jnp.sin(x @ x.T) * k


def test_compiled_programs_are_dropped_when_they_crowd_the_memory_mappings():
    """Every XLA executable holds memory mappings; past half the kernel's limit they are all dropped (the suite and the
    app's server once failed at random after a few dozen closed-loop programs: MemoryError, segfaults, hangs)."""
    count, limit = export_cache.memory_mappings()
    assert 0 < count < limit
    for k in range(60):  # 60 programs kept by jax's cache of one jitted function, as a module-level jit keeps them
        _scaled(jnp.ones((4, 4)), k=k).block_until_ready()
    crowded, _ = export_cache.memory_mappings()
    assert not export_cache.release_programs_when_crowded(fraction=0.5, limit=2 * crowded + 100)
    assert export_cache.release_programs_when_crowded(fraction=0.5, limit=crowded // 2)
    released, _ = export_cache.memory_mappings()
    assert released < crowded - 100  # about six mappings per small program


ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n"


def test_compiled_programs_are_kept_per_processor(tmp_path):
    """A cache root shared by machines with different CPUs (a cluster's home directory) gives each its own folder:
    XLA would only log the mismatch and run code built for another instruction set."""
    assert export_cache.host_tag(ZEN4) == export_cache.host_tag(ZEN4.replace("avx2 avx512f", "avx512f avx2"))
    assert export_cache.host_tag(ZEN4) != export_cache.host_tag(ZEN4.replace(" avx512f", ""))
    assert export_cache.host_tag(ZEN4) != export_cache.host_tag(ZEN4.replace("9B14", "7B13"))
    before = jax.config.jax_compilation_cache_dir
    try:
        folder = pipeline.enable_compilation_cache(tmp_path / "root")
        assert folder == tmp_path / "root" / export_cache.host_tag() and folder.is_dir()
        assert export_cache.cache_folder() == folder
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
