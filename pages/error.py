"""Error over steps: how far the denoiser's prediction is from the previous chunk on the guided prefix."""

from pages import _frame

_frame.declared_page("error")
