"""Looking inside networks and runs: pictures as data and figures, never files.

* :func:`image_grid`, :func:`denormalize`, :func:`normalize`: labelled image grids, and
  pixels to the model's inputs and back;
* :func:`window_arithmetic`: the lecture's ``(N - F + 2P)/S + 1`` for one window, worked out,
  as plain data (:class:`WindowArithmetic`);
* :func:`hooked` / :func:`record_outputs`: forward hooks on named modules, removed whatever
  happens;
* :func:`load_subject`: a run folder or a model target, ready to look at;
* :func:`filter_tiles` / :func:`filter_figure`: learned filters as a grid;
* :func:`activation_maps` / :func:`activation_figure`: each layer's maps for one input;
* :func:`max_activations` / :func:`maxact_figure`: the top patches of each channel,
  cropped to the receptive field (Zeiler & Fergus 2013);
* :func:`arith_animation` / :func:`misfit` / :func:`arith_page`: the sliding window as
  frames, the window that does not fit, and the interactive page;
* :func:`arch_boxes` / :func:`arch_figure`: the network drawn as volumes;
* :func:`read_curves` / :func:`curves_figure` / :func:`confusion_figure`: a run's curves;
* :func:`report_html` / :func:`write_report`: the run report, one self-contained page.

Figures are matplotlib ``Figure`` objects on their own Agg canvas (no pyplot); the CLI
encodes and writes them.  Viz reads the analysis, the data and training runs; nothing below
imports it.  Everything is imported on first use, so ``cnnlab arith`` needs neither torch nor
matplotlib.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

_LAZY = {
    "ConvParams": "cnnlab.viz.arithmetic",
    "WindowArithmetic": "cnnlab.viz.arithmetic",
    "window_arithmetic": "cnnlab.viz.arithmetic",
    "denormalize": "cnnlab.viz.images",
    "normalize": "cnnlab.viz.images",
    "image_grid": "cnnlab.viz.grid",
    "hooked": "cnnlab.viz.hooks",
    "record_outputs": "cnnlab.viz.hooks",
    "Subject": "cnnlab.viz.source",
    "load_subject": "cnnlab.viz.source",
    "filter_tiles": "cnnlab.viz.filters",
    "filter_figure": "cnnlab.viz.filters",
    "activation_maps": "cnnlab.viz.activations",
    "activation_figure": "cnnlab.viz.activations",
    "max_activations": "cnnlab.viz.maxact",
    "maxact_figure": "cnnlab.viz.maxact",
    "arith_animation": "cnnlab.viz.arith_frames",
    "misfit": "cnnlab.viz.arith_frames",
    "arith_page": "cnnlab.viz.arith_page",
    "arch_boxes": "cnnlab.viz.arch",
    "arch_figure": "cnnlab.viz.arch",
    "read_curves": "cnnlab.viz.curves",
    "curves_figure": "cnnlab.viz.curves",
    "confusion_figure": "cnnlab.viz.curves",
    "report_html": "cnnlab.viz.report",
    "write_report": "cnnlab.viz.report",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
