"""Error over steps: how far the denoiser's prediction is from the previous chunk on the guided prefix."""

from pages import _ui

_ui.page(
    "error",
    lambda context, result: _ui.show_page_content(
        "error",
        context,
        result,
    ),
)
