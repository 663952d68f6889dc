"""Velocity v_t: the network's velocity at every step, before guidance, for RTC and plain sampling."""

from pages import _frame

_frame.declared_page("v_t")
