"""Shared fixtures: paths to ../shared, small models, the legacy-threefry switch."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest
from flax import nnx

from rtc.io import export_cache
from rtc.numerics.model import FlowPolicy, ModelConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The one place that decides where the reference material is: RTC_SHARED, else ../shared beside the project.
# Every test and benchmark takes these paths from here (tests/test_shared_material.py keeps it so).
SHARED_ENV = "RTC_SHARED"
SHARED = Path(os.environ.get(SHARED_ENV, PROJECT_ROOT.parent / "shared")).resolve()
FIXTURE_RUN = SHARED / "fixtures" / "upstream_small_run"
LEROBOT_TRACES = SHARED / "fixtures" / "lerobot"
DEMO_RUN = PROJECT_ROOT / "runs" / "demo"
SMALL_CONFIG = ModelConfig(
    channel_dim=32, channel_hidden_dim=64, token_hidden_dim=16, num_layers=2, action_chunk_size=8
)


# Derived once here rather than spelled on each test: what starts a server, a browser or Ray is slow.
SLOW_FIXTURES = frozenset({"ray_local"})  # fixtures that start Ray


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every end-to-end test (a server and a browser) and every test that uses a Ray fixture, so
    ``pytest -m "not slow"`` is the fast set. Tests that start a subprocess carry ``@pytest.mark.slow`` themselves."""
    for item in items:
        if item.get_closest_marker("e2e") or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Print a failure's traceback the moment it happens, not only in the summary: a run cut off by CI's time limit
    still shows why its tests failed."""
    report = yield
    terminal = item.config.pluginmanager.get_plugin("terminalreporter")
    if report.failed and terminal is not None:
        terminal.write_line(f"\n--- FAILED {report.nodeid} ({report.when}) ---\n{report.longreprtext}\n---")
    return report


@pytest.fixture(scope="module", autouse=True)
def _programs_released_when_crowded():
    """After each test module, the compiled programs are dropped if they crowd this long-lived process's memory
    mappings (``export_cache.release_programs_when_crowded``): the full suite compiles over a dozen closed-loop
    programs of about 3,500 mappings each, and past ``vm.max_map_count`` (65,530) it failed at random (MemoryError,
    segfaults in XLA's compiler, a hang in orbax) in the clean-clone runs."""
    yield
    export_cache.release_programs_when_crowded()


def shared_path(*parts: str) -> Path:
    """A path under ../shared, failing (not skipping) when the reference material is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference material {path} is missing; set RTC_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def fixture_run() -> Path:
    return shared_path(*FIXTURE_RUN.relative_to(SHARED).parts)


@pytest.fixture(scope="session")
def shared_worlds() -> Path:
    return shared_path("worlds", "l")


@pytest.fixture
def legacy_threefry():
    """Draw noise as jax 0.4.35 did, for comparisons with the paper's stack."""
    previous = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    yield
    jax.config.update("jax_threefry_partitionable", previous)


def random_policy(obs_dim: int = 10, action_dim: int = 6, seed: int = 0, perturb: float = 0.3) -> FlowPolicy:
    """A small policy whose zero-initialised adaLN kernels are perturbed, so every layer matters."""
    policy = FlowPolicy(obs_dim, action_dim, SMALL_CONFIG, rngs=nnx.Rngs(seed))
    graphdef, state = nnx.split(policy)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [leaf + perturb * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


@pytest.fixture(scope="session")
def small_policy() -> FlowPolicy:
    return random_policy()


@pytest.fixture(scope="module")
def ray_local():
    """A local 2-CPU Ray instance per test module that asks for it, shut down after the module, so no Ray driver
    (its threads and sockets) stays in the test process for the rest of the session."""
    from rtc.experiments.sweep import ray_backend as sweep_ray

    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install -e ".[ray]"')
    sweep_ray.connect(None, num_cpus=2)
    yield ray
    ray.shutdown()
