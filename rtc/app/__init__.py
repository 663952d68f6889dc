"""The report app's state, Streamlit-free: the selection in the URL and its validation, presets, and the
server-wide job queue. ``pages/`` and ``streamlit_app.py`` hold the UI and are the only code that imports
streamlit.

May import every ``rtc`` package except ``rtc.commands``.
"""
