"""The faster Bokeh serialisation gives exactly the JSON Bokeh's own gives: for the
dashboard's whole page, for its models after a change, and the same error for an unset
required property."""

from __future__ import annotations

import json

import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, CustomJS, Range1d

from explorer.ui import bokeh_speedups


def _page_json(doc: Document) -> str:
    """The document's JSON, buffers written out by content (their ids are new on every
    serialisation)."""

    def by_content(obj):
        return ["buffer", bytes(obj.data).hex()] if hasattr(obj, "data") else repr(obj)

    return json.dumps(doc.to_json().content, sort_keys=True, default=by_content)


def _sent_values(models) -> list[str]:
    return [json.dumps(m.properties_with_values(include_defaults=False), sort_keys=True,
                       default=repr) for m in models]


@pytest.fixture
def fast_query():
    assert bokeh_speedups.skip_unsent_defaults()
    yield
    bokeh_speedups.restore_bokeh_query()


def test_whole_page_serialises_as_bokeh_does(fast_query):
    import panel as pn

    from explorer.ui.app import build_app

    app = build_app()
    doc = Document()
    doc.add_root(pn.panel(app).get_root(doc))
    fast = _page_json(doc)  # first, so that nothing Bokeh's own walk leaves behind helps
    bokeh_speedups.restore_bokeh_query()
    assert len(fast) > 50_000 and fast == _page_json(doc)

    app.config.device.levels = 17  # histograms, table and curve change
    models = sorted(doc.models, key=lambda m: m.id)
    bokeh_speedups.skip_unsent_defaults()
    fast_models = _sent_values(models)
    bokeh_speedups.restore_bokeh_query()
    assert fast_models == _sent_values(models)


def test_small_models_send_what_bokeh_sends(fast_query):
    models = [ColumnDataSource(data={"x": [1, 2]}, tags=["t"]), Range1d(start=1, end=2),
              CustomJS(code="return 1")]
    fast = _sent_values(models)
    sent = models[0].properties_with_values(include_defaults=False)
    assert sent["tags"] == ["t"] and "selection_policy" in sent and "name" not in sent
    bokeh_speedups.restore_bokeh_query()
    assert fast == _sent_values(models)


def test_unset_required_property_still_raises(fast_query):
    with pytest.raises(ValueError, match="code"):
        CustomJS().properties_with_values(include_defaults=False)
    bokeh_speedups.restore_bokeh_query()
    with pytest.raises(ValueError, match="code"):
        CustomJS().properties_with_values(include_defaults=False)
