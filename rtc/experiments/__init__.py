"""What is run on a policy, by job:

- ``settings``: every setting declared once, as fields of four frozen dataclasses (default, range, help, URL key,
  flags, widget) and the named presets; ``fields``: how a field is declared (``Spec``) and what derives from it
- ``protocol``: the paper's chunked-execution protocol and its situations
- ``pipeline``: one open-loop inspection with tracking; ``analysis``: the analysis pages' computations
- ``rollout/``: closed-loop episodes (keys, the jitted program, results, re-inspection of one block)
- ``sweep/``: the paper's sweep (points and statistics, the grid, the on-disk store, running it here or on Ray)

May import ``rtc.errors``, ``rtc.numerics`` and ``rtc.io``; never figures (``rtc.report``) or the app.
"""
