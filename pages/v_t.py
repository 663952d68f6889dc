"""Velocity v_t: the network's velocity at every step, before guidance, for RTC and plain sampling."""

from pages import _ui

_ui.page(
    "v_t",
    lambda context, result: _ui.show_page_content(
        "v_t",
        context,
        result,
    ),
)
