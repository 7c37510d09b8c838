"""The Streamlit dashboard, started by ``journeyscope dashboard``; it reads a warehouse file or the eval API.

An application rather than a library: nothing here is for import; its modules are its own.
"""

__all__: list[str] = []
