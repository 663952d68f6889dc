"""RTC correction: the guidance term per step, per horizon index, for the chosen action dimensions."""

from pages import _ui

_ui.page(
    "correction",
    lambda context, result: _ui.show_page_content(
        "correction",
        context,
        result,
        figure_note=(
            "One action entry (batch element, horizon index h, one tab per action dimension) through every step: "
            "x_t, v_t, the prediction x_1_pred, the correction and the applied term."
        ),
    ),
)
