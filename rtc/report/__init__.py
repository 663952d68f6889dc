"""Figures and reports: matplotlib figures, Altair charts, the figure layout engine, rendering (in worker
processes), the page table every page/bundle/report reads, and figure bundles.

May import ``rtc.errors``, ``rtc.numerics``, ``rtc.io`` and ``rtc.experiments``; never ``rtc.app`` or the
command lines. Matplotlib only through ``matplotlib.figure.Figure``.
"""
