"""Runs a notebook headless with nbclient and writes the executed copy (outputs included).

Usage: execute.py <notebook> <executed copy>. Parameters reach the notebook through the environment. Exits 1 on
the first cell that raises, printing that error's last line, so that a caller (the CLI, the tests) fails on it.
"""

import sys
import tempfile

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

source, executed = sys.argv[1], sys.argv[2]
notebook = nbformat.read(source, as_version=4)
with tempfile.TemporaryDirectory(prefix="tttnn-kernel-") as sockets:
    # IPC sockets in a private folder: no TCP ports, and no warning about unencrypted TCP on every run.
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
    client = NotebookClient(notebook, km=kernel, timeout=600)
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        failure = f"{source}: a cell failed: {error.ename}: {error.evalue}"
nbformat.write(notebook, executed)
if failure is not None:
    print(failure, file=sys.stderr)
    sys.exit(1)
