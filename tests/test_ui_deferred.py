"""Deferred view updates (explorer/ui/deferred.py) in a served document whose session ends
before the scheduled run: Bokeh drops a destroyed session's callbacks, so the run never
comes. Nothing of that session may stay alive because of it (weak references, counts)."""

from __future__ import annotations

import gc
import weakref

from bokeh.document import Document
from panel.io.state import set_curdoc

from explorer.ui import deferred as deferred_module
from explorer.ui.deferred import Deferred


class SessionContextStub:
    """What :func:`explorer.ui.session.served_document` asks of a served document."""

    id = "test-session"


class View:
    """A session's view: it holds its document (as Panel's components do) and a deferred
    update of itself."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.runs = 0
        self.update_later = Deferred(self.update)

    def update(self) -> None:
        self.runs += 1


def served_doc() -> tuple[Document, SessionContextStub]:
    doc = Document()
    context = SessionContextStub()
    doc._session_context = lambda: context  # as Panel's own session stubs do
    return doc, context


def test_a_session_that_ends_before_its_deferred_run_is_collected():
    doc, _context = served_doc()
    view = View(doc)
    with set_curdoc(doc):
        view.update_later()  # scheduled on the document's next tick, which never comes
    assert view.runs == 0
    assert doc in deferred_module._waiting  # it waits
    doc_alive, view_alive = weakref.ref(doc), weakref.ref(view)
    del doc, view
    gc.collect()
    assert view_alive() is None, "a deferred call that never ran keeps its view alive"
    assert doc_alive() is None, "a deferred call that never ran keeps its document alive"


def test_the_deferred_runs_of_a_change_run_once_each_and_skip_collected_views():
    doc, _context = served_doc()
    kept, dropped = View(doc), View(doc)
    with set_curdoc(doc):
        kept.update_later()
        kept.update_later()  # asked twice before the run: runs once
        dropped.update_later()
    del dropped
    gc.collect()
    with set_curdoc(doc):
        deferred_module._after_patch(doc, 0)  # the scheduled run (nothing left to write)
    assert kept.runs == 1
    assert doc not in deferred_module._waiting
    with set_curdoc(doc):
        kept.update_later()  # a later change asks again
        deferred_module._after_patch(doc, 0)
    assert kept.runs == 2
