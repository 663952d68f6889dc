"""Command lines: ``rtc-visualize`` (``visualize``) and ``rtc-sweep`` (``sweep``). The top layer: may import
any ``rtc`` package except ``rtc.app``.
"""
