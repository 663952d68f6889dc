"""RTC correction: the guidance term per step, per horizon index, for the chosen action dimensions."""

from pages import _ui

_ui.page(
    "correction",
    lambda context, result: _ui.show_page_content(
        "correction",
        context,
        result,
    ),
)
