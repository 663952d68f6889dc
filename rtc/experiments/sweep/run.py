"""Running a sweep's grid: the points the store lacks, in this process or on Ray (``ray_backend``).

It sits above ``grid`` (the tasks and the in-process loop) and ``ray_backend`` (which needs ``grid``'s types),
so neither of those imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Sequence

from rtc.experiments.sweep import grid as sweep_grid
from rtc.experiments.sweep import store as sweep_store


def run_grid(
    entries: Sequence[sweep_grid.LevelEntry],
    tasks: Sequence[sweep_grid.Task],
    store: sweep_store.ResultsStore,
    progress: sweep_grid.GridProgress | None = None,
    ray_address: str | bool | None = False,
    ray_cpus: int | None = None,
    ray_timeout_s: float | None = None,
) -> tuple[int, int]:
    """Compute the tasks the store lacks; ``(computed, reused)``. ``ray_address`` False: in this process;
    None or "": a local Ray instance (``ray_cpus`` CPUs); an address: join that cluster."""
    missing = list({t.point_id: t for t in tasks if t.point_id not in store}.values())
    reused = len({t.point_id for t in tasks}) - len(missing)
    report = progress or (lambda *_: None)
    if missing:
        if ray_address is False:
            sweep_grid.run_in_process(entries, missing, store, report)
        else:
            from rtc.experiments.sweep import ray_backend as sweep_ray  # imports ray: only when asked for

            timeout = sweep_ray.DEFAULT_TIMEOUT_S if ray_timeout_s is None else ray_timeout_s
            sweep_ray.run_ray(
                entries, missing, store, report, address=ray_address or None, num_cpus=ray_cpus, timeout_s=timeout
            )
    return len(missing), reused
