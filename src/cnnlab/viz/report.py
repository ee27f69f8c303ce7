"""The run report: one self-contained HTML page (every image embedded as a data: URI, no
script, nothing fetched) with what a run is and what it learned.

Sections: the run's configuration; the model's summary table from the analysis (one row per
analysis row: output volume, parameters, MACs, receptive field); the training curves; the
test confusion matrix and per-class accuracy; the first layer's filters; maximally
activating patches of a few channels; the architecture drawn as volumes; some test images
with the model's predictions.  ``cnnlab train`` writes it at the end of a run.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["REPORT_FILE", "report_html", "write_report"]

REPORT_FILE = "report.html"
# The page may fetch nothing: inline style, data: images, no script.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border-bottom: 1px solid #ddd; padding: .15em .6em; text-align: right; }
th:first-child, td:first-child, td.l { text-align: left; }
pre { background: #f6f6f6; padding: .8em; font-size: .8em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; }
.facts span { margin-right: 2em; }
"""


def _img(data: bytes, mime: str, alt: str, id_: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img id="{id_}" alt="{html.escape(alt)}" src="data:{mime};base64,{b64}">'


def _png(fig: Any, alt: str, id_: str) -> str:
    from cnnlab.viz._figure import figure_bytes

    return _img(figure_bytes(fig), "image/png", alt, id_)


def _pil_png(image: Any, alt: str, id_: str) -> str:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return _img(buf.getvalue(), "image/png", alt, id_)


def _summary_table(analysis: Any) -> str:
    head = ("layer", "type", "output", "params", "MACs", "RF", "jump", "fit")
    rows = []
    for r in analysis.rows:
        f = r.field
        indent = "&nbsp;" * 2 * (r.depth - 1)
        cells = (
            f'<td class="l">{indent}{html.escape(r.path)}</td>',
            f'<td class="l">{html.escape(r.type)}</td>',
            f"<td>{html.escape(r.volume)}</td>",
            f"<td>{r.params:,}</td>",
            f"<td>{r.macs:,}</td>",
            f"<td>{html.escape(f.text()) if f else '-'}</td>",
            f"<td>{html.escape(f.jump_text()) if f else '-'}</td>",
            f"<td>{html.escape(r.fit)}</td>",
        )
        rows.append(f'<tr data-path="{html.escape(r.path)}">{"".join(cells)}</tr>')
    t = analysis.totals
    foot = (
        f'<tfoot><tr><td class="l">total</td><td></td><td></td><td>{t.params:,}</td>'
        f"<td>{t.macs:,}</td><td></td><td></td><td></td></tr></tfoot>"
    )
    th = "".join(f"<th>{h}</th>" for h in head)
    conventions = "".join(
        f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in analysis.conventions.items()
    )
    return (
        f'<table id="summary"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f"{foot}</table><ul>{conventions}</ul>"
    )


def _per_class(final: dict[str, Any], classes: tuple[str, ...]) -> str:
    rows = []
    for name, acc in zip(classes, final.get("per_class") or [], strict=False):
        shown = "-" if acc is None else f"{100 * acc:.1f}%"
        rows.append(f'<tr><td class="l">{html.escape(name)}</td><td>{shown}</td></tr>')
    return (
        '<table id="per-class"><thead><tr><th>class</th><th>test accuracy</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _deepest_map_layer(analysis: Any, convs: list[str]) -> str | None:
    for name in reversed(convs):
        try:
            f = analysis.row(name).field
        except KeyError:
            continue
        maps = analysis.row(name).output_shape[2:]
        wide = len(maps) == 2 and maps[0] * maps[1] > 1  # a 1x1 map is the whole image
        if f is not None and f.jump is not None and not f.is_global and wide:
            return name
    return None


def report_html(
    run: Any,
    *,
    weights: str = "best",
    data_dir: str | Path | None = None,
    channels: int = 4,
    search: int = 1000,
    predictions: int = 24,
) -> str:
    """The report page of a :class:`~cnnlab.train.Run` (its ``weights``).  The patches are
    searched among the first ``search`` test images; ``predictions`` test images are shown
    with the model's top class."""
    from cnnlab.analysis import analyze
    from cnnlab.train.evaluate import probabilities
    from cnnlab.train.runs import run_split
    from cnnlab.viz.arch import arch_boxes, arch_figure
    from cnnlab.viz.curves import confusion_figure, curves_figure, read_curves, read_final
    from cnnlab.viz.filters import filter_figure, filter_tiles
    from cnnlab.viz.grid import image_grid
    from cnnlab.viz.maxact import max_activations, maxact_figure, strongest_channels
    from cnnlab.viz.source import conv_layers, conv_weight

    model = run.build_model(weights)
    label = f"{run.record['target']} on {run.dataset}"
    analysis = analyze(model, run.input_shape)
    test = run_split(run, "test", data_dir=data_dir)
    sections: list[tuple[str, str, str]] = []  # (id, heading, body)

    config = (run.path / "config.toml").read_text(encoding="utf-8")
    sections.append(("config", "Configuration", f"<pre>{html.escape(config)}</pre>"))
    sections.append(("model", "Model: the analysis, layer by layer", _summary_table(analysis)))
    try:
        body = _png(curves_figure(read_curves(run), label), "training curves", "curves-img")
    except CnnlabError as exc:
        body = f"<p>{html.escape(str(exc))}</p>"
    sections.append(("curves", "Training curves", body))
    try:
        final = read_final(run)
        fig = confusion_figure(final["confusion"], run.classes, "test confusion matrix")
        body = _png(fig, "confusion matrix", "confusion-img") + _per_class(final, run.classes)
    except CnnlabError as exc:
        body = f"<p>{html.escape(str(exc))}</p>"
    sections.append(("confusion", "Test confusion matrix and per-class accuracy", body))

    convs = conv_layers(model)
    if convs:
        weight, mask = conv_weight(dict(model.named_modules())[convs[0]])
        k, c, kh, kw = weight.shape
        tiles = filter_tiles(weight, mask=mask)
        fig = filter_figure(tiles, f"{convs[0]}: {k} filters {kh}x{kw}x{c}")
        sections.append(
            (
                "filters",
                f"First-layer filters ({convs[0]})",
                _png(fig, "first-layer filters", "filters-img"),
            )
        )
    layer = _deepest_map_layer(analysis, convs)
    if layer is not None:
        subset = test.subset(list(range(min(search, len(test)))))
        chosen = strongest_channels(model, layer, channels)
        found = max_activations(
            model, subset, layer, chosen, mean=run.mean, std=run.std, analysis=analysis
        )
        size = analysis.row(layer).field.size
        fig = maxact_figure(found, layer, size, f"the first {len(subset):,} test images")
        sections.append(
            (
                "maxact",
                f"Maximally activating patches ({layer})",
                _png(fig, "maximally activating patches", "maxact-img"),
            )
        )
    from cnnlab.viz._figure import figure_bytes

    svg = figure_bytes(arch_figure(arch_boxes(analysis), label), "svg")
    sections.append(
        ("arch", "Architecture", _img(svg, "image/svg+xml", "architecture", "arch-img"))
    )

    n = min(predictions, len(test))
    probs = probabilities(model, test.images[:n], run.mean, run.std)
    p, pred = probs.max(dim=1)
    captions = [
        f"{run.classes[int(k)]} {100 * float(q):.0f}%" + ("" if int(k) == int(y) else " x")
        for k, q, y in zip(pred, p, test.labels[:n], strict=True)
    ]
    grid = image_grid(test.images[:n], captions, columns=8)
    wrong = sum(int(k) != int(y) for k, y in zip(pred, test.labels[:n], strict=True))
    sections.append(
        (
            "predictions",
            f"Test predictions (the first {n}; x: wrong, {wrong} of {n})",
            _pil_png(grid, "test predictions", "predictions-img"),
        )
    )

    fin = run.final or {}
    facts = [
        f"<span>dataset {html.escape(run.dataset)}</span>",
        f"<span>epochs {len(run.epochs)}</span>",
        f"<span>stopped {html.escape(str(fin.get('stopped', '-')))}</span>",
    ]
    if isinstance(fin.get("test_top1"), int | float):
        facts.insert(0, f"<span>test top-1 {100 * fin['test_top1']:.2f}%</span>")
    nav = " | ".join(f'<a href="#{i}">{html.escape(h.split(" (")[0])}</a>' for i, h, _ in sections)
    body = "".join(
        f'<section id="{i}"><h2>{html.escape(h)}</h2>{b}</section>' for i, h, b in sections
    )
    title = f"cnnlab run {run.path.name}: {label}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{html.escape(title)}</title><link rel="icon" href="data:,">
<style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="facts">{"".join(facts)}</p>
<nav>{nav}</nav>
{body}
</body></html>
"""


def write_report(run_path: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    """Write :func:`report_html` of the run at ``run_path`` to ``out`` (default
    ``RUN/report.html``), atomically; returns the path."""
    from cnnlab import _io
    from cnnlab.train.run import open_run

    run = open_run(run_path)
    path = Path(out) if out is not None else run.path / REPORT_FILE
    text = report_html(run, **options)
    try:
        _io.atomic_write_text(path, text)
    except OSError as exc:
        raise CnnlabError(f"{path}: cannot write the report ({exc.strerror})") from None
    return path
