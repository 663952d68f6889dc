"""The documented command line, on the demo run and on the paper-format fixture run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rtc.commands import visualize as cli
from tests.conftest import DEMO_RUN, PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "visualize_flow_matching.py"


def test_documented_defaults():
    args = cli.build_parser().parse_args(["runs/demo"])
    assert args.step == -1 and args.prefix_attention_schedule == "exp"
    assert args.action_dim_indices == [0, 1, 2]
    assert str(args.output_dir) == "rtc_plots" and args.seed == 0
    assert args.level_path == "worlds/l/grasp_easy.json"
    assert args.batch_size == 16 and args.situation == "same-observation" and args.preset is None
    settings = cli.settings_from_args(args, 8)  # d and s come from the policy's chunk size
    assert (settings.num_flow_steps, settings.inference_delay, settings.execute_horizon) == (20, 2, 4)
    assert settings.max_guidance_weight == 5.0
    assert settings.validate(8) == []  # inside the paper's range: no warning
    assert (cli.settings_from_args(args, 16).inference_delay, cli.settings_from_args(args, 16).execute_horizon) == (
        4,
        8,
    )


def test_tracking_doc_preset_and_flags_over_it():
    args = cli.build_parser().parse_args(["runs/demo", "--preset", "tracking-doc", "--config.num-flow-steps", "7"])
    settings = cli.settings_from_args(args, 8)
    assert (settings.inference_delay, settings.execute_horizon, settings.max_guidance_weight) == (3, 6, 5.0)
    assert settings.num_flow_steps == 7
    assert any("shorter than the delay" in w for w in settings.validate(8))


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
@pytest.mark.parametrize(("timing", "defined"), [((["--preset", "tracking-doc"]), False), ([], True)])
def test_summary_boundary_jump_is_null_where_it_would_meet_padding(tmp_path, capsys, timing, defined):
    out = tmp_path / "out"
    code = cli.main(
        [str(DEMO_RUN), "--output-dir", str(out), "--config.num-flow-steps", "5", "--situation", "protocol", *timing]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["situation"]["name"] == "protocol"
    metrics = summary["metrics"]
    if defined:  # d = 2, s = 4: prev[1] is a real planned action
        assert (summary["settings"]["inference_delay"], summary["settings"]["execute_horizon"]) == (2, 4)
        assert metrics["boundary_jump_rtc"] > 0 and metrics["boundary_jump_plain"] > 0
    else:  # d = 3, s = 6: prev[2] is zero padding (H - s = 2)
        assert metrics["boundary_jump_rtc"] is None and metrics["boundary_jump_plain"] is None
        assert any("shorter than the delay" in w for w in summary["warnings"])


def _refuse(name: str) -> None:
    raise ValueError(f"summary.json holds {name}, which is not JSON")


def test_cli_on_the_demo_run_saves_plots_and_arrays(tmp_path, capsys):
    out = tmp_path / "plots"
    code = cli.main(
        [
            str(DEMO_RUN),
            "--output-dir",
            str(out),
            "--config.num-flow-steps",
            "8",
            "--config.action-dim-indices",
            "0",
            "4",
            "--config.prefix-attention-schedule",
            "linear",
            "--config.batch-size",
            "8",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["level_key"] == "worlds_l_grasp_easy"
    assert summary["settings"]["prefix_attention_schedule"] == "linear"
    assert summary["warnings"] == []  # the default d=2, s=4 is inside the paper's range
    assert summary["situation"]["name"] == "same-observation"
    assert "first block" in summary["situation"]["description"]
    # one estimator: the median of the per-sample effect with its distribution-free interval and n
    found = summary["metrics"]
    assert 0 < found["guidance_effect"] <= 1 and found["guidance_effect_n"] == 8
    assert found["guidance_effect_low"] <= found["guidance_effect"] <= found["guidance_effect_high"]
    assert found["guidance_cost_low"] <= found["guidance_cost"] <= found["guidance_cost_high"]
    json.loads((out / "summary.json").read_text(), parse_constant=_refuse)  # strict JSON: no NaN or Infinity
    for name in summary["files"]:
        assert (out / name).is_file(), name
    assert "rtc_flow_steps_b0_h0_a4.png" in summary["files"]
    data = np.load(out / "rtc_tracked.npz")
    assert data["rtc/x_t"].shape == (8, 8, 8, 6)
    # the paper's first block: the previous chunk is the first chunk, unshifted and unpadded
    np.testing.assert_array_equal(data["rtc/prev_action_chunk"], np.broadcast_to(data["first_chunk"], (8, 8, 6)))
    assert int(data["rtc/prev_valid"]) == 8 and int(data["rtc/execute_horizon"]) == 4
    np.testing.assert_array_equal(data["rtc/x_t"][0], data["plain/x_t"][0])
    assert summary["metrics"]["weighted_prefix_error_rtc"] < summary["metrics"]["weighted_prefix_error_plain"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--config.execute-horizon", "9"], "execute horizon s=9 is out of range"),
        (["--config.inference-delay", "5", "--config.execute-horizon", "4"], "execute horizon s=4"),
        (["--config.step", "7"], "epoch 7 is not in run"),
        (["--level-path", "worlds/l/mjc_walker.json"], "no policy for level"),
        (["--config.action-dim-indices", "6"], "action-dim-indices 6 is out of range; accepted 0..5"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    assert cli.main([str(DEMO_RUN), "--output-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow  # starts a subprocess
def test_example_script_on_the_paper_run_with_an_absolute_level_path(tmp_path, fixture_run, shared_worlds):
    level = shared_worlds / "hard_lunar_lander.json"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(fixture_run),
            "--level-path",
            str(level),
            "--output-dir",
            str(tmp_path),
            "--config.num-flow-steps",
            "10",
            "--config.inference-delay",
            "2",
            "--config.execute-horizon",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["level_key"] == "worlds_l_hard_lunar_lander" and summary["epoch"] == 3
    assert summary["warnings"] == []
    assert "Saved" in result.stdout
