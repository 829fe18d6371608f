"""The project's version: the one place it is written (pyproject.toml reads it from here;
``node.__version__``, ``client.__version__``, every command's ``--version`` and the
``ledger_build_info`` metric show it). ``node/_code.py`` tells two builds of one version
apart."""

__version__ = "0.1.0"
