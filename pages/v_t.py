"""Velocity v_t: the network's velocity at every step, before guidance, for RTC and plain sampling."""

from pages import _ui

_ui.page(
    "v_t",
    lambda context, result: _ui.show_page_content(
        "v_t",
        context,
        result,
        figure_note=(
            "The plain sample (no guidance) from the same noise at the chosen horizon index h, one tab per "
            "action dimension: compare its x_t and v_t with the RTC figure on the State x_t page."
        ),
    ),
)
