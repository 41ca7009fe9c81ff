"""Server start-up: the imported modules are frozen out of full garbage collections, and
what sessions build later stays collectable (run in a fresh interpreter: freezing is for
the whole process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import gc, weakref
    import explorer.ui.app  # torch, Panel, Bokeh and the app's code: what a server imports
    from explorer.ui.startup import freeze_startup_objects

    before = len(gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert freeze_startup_objects() is True
    frozen = gc.get_freeze_count()
    assert frozen >= 0.9 * before, (frozen, before)
    assert len(gc.get_objects()) < 0.1 * before  # a full collection no longer walks them
    assert freeze_startup_objects() is False  # once per process
    assert gc.get_freeze_count() == frozen

    class Node:
        pass

    node = Node()
    node.me = node  # a cycle built after the freeze, as a session's views are
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None
    print("ok", before, frozen)
""")


def test_startup_objects_are_frozen_once_and_later_cycles_are_collected():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
