"""Making runs: the flow-matching training loop (``flow``) and the committed runs built with it, each with the
scripted demonstrations it learns from and the one command that regenerates it (``demo``: ``runs/demo``).

May import ``rtc.errors``, ``rtc.numerics``, ``rtc.io`` and ``rtc.experiments``; never figures or the app.
"""
