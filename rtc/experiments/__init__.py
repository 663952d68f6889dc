"""What is run on a policy: the paper's chunked-execution protocol and its situations, one open-loop
inspection (``pipeline``), the analysis pages' computations, closed-loop rollouts, sweeps (grid, store, Ray)
and the demo run.

May import ``rtc.errors``, ``rtc.numerics`` and ``rtc.io``; never figures (``rtc.report``) or the app.
"""
