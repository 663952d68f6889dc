"""RTC correction: the guidance term per step, per horizon index, for the chosen action dimensions."""

from pages import _frame

_frame.declared_page("correction")
