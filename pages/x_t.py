"""State x_t: every denoising step of the RTC and plain samples, per horizon index and action dimension."""

from pages import _frame

_frame.declared_page("x_t")
