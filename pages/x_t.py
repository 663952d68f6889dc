"""State x_t: every denoising step of the RTC and plain samples, per horizon index and action dimension."""

from pages import _ui

_ui.page(
    "x_t",
    lambda context, result: _ui.show_page_content(
        "x_t",
        context,
        result,
    ),
)
