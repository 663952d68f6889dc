"""Velocity v_t: the network's velocity at every step, before guidance, for RTC and plain sampling."""

from pages import _ui

_ui.page(
    "v_t",
    lambda context, result: _ui.show_page_content(
        "v_t",
        context,
        result,
        figure_note=(
            "The plain sample (no guidance) from the same noise at the chosen horizon index h: compare its "
            "x_t and v_t columns with the RTC grid on the State x_t page."
        ),
    ),
)
