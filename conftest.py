"""Root pytest configuration: gpuconv/dask.py needs the optional `dask` extra, so its doctests
are collected only where Dask is installed."""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["gpuconv/dask.py"]
