"""State x_t: every denoising step of the RTC and plain samples, per horizon index and action dimension."""

from pages import _ui

_ui.page(
    "x_t",
    lambda context, result: _ui.show_page_content(
        "x_t",
        context,
        result,
        figure_note=(
            "RTC sample at the chosen horizon index h, one tab per action dimension: x_t, v_t and the correction "
            "side by side; the red dashed line is the previous chunk's value when h is guided."
        ),
    ),
)
