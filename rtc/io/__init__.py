"""Files and environments: checkpoints and runs, Kinetix levels and their reset observations, trace files,
the configured roots every user file must resolve inside, compiled programs kept on disk, atomic writes.

Everything that reads or writes what users give us lives here, behind the security boundary (allow-listed
unpickler, ``allow_pickle=False``, paths confined to roots). May import ``rtc.errors`` and ``rtc.numerics``.
"""
