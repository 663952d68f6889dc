"""Numerics and the model: flow sampling with RTC guidance, the flow policy, the chunking methods, metrics,
many-seed batches and guidance diagnostics (training lives in ``rtc.training``).

Pure computation on arrays (numpy, jax, flax, optax). May import only ``rtc.errors`` and other ``rtc.numerics``
modules: never files, environments, experiments, figures or the app (``tests/test_architecture.py``).
"""
