"""Plot RTC's denoising steps for a training run (see ``rtc.commands.visualize`` and the README).

python examples/visualize_flow_matching.py runs/demo --config.prefix-attention-schedule exp
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from rtc.commands.visualize import main

if __name__ == "__main__":
    raise SystemExit(main())
