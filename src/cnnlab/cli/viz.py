"""``cnnlab viz ...`` (pictures of a network, a run or the lecture's arithmetic),
``cnnlab report RUN`` (the run's self-contained HTML page) and ``cnnlab demo approx``.

The library (:mod:`cnnlab.viz`) computes figures, frames and page text; this module writes
the files, each to ``--out FILE`` (default: a name in the current folder) and prints where.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, GeometryError

_SPLITS = ("test", "val", "train")


def register(sub: argparse._SubParsersAction) -> None:
    viz = sub.add_parser(
        "viz",
        help="pictures: filters, activation maps, max-activating patches, arithmetic, "
        "architecture, training curves",
        description="Pictures of a network or a run. MODEL is a run folder, a zoo name, a "
        "network in the notation or file.py:factory (untrained).",
    )
    vs = viz.add_subparsers(dest="viz_command", metavar="PICTURE")
    viz.set_defaults(func=lambda args: _usage(viz))

    p = vs.add_parser("filters", help="a layer's filters as a grid of tiles")
    _subject_options(p)
    p.add_argument("--layer", help="a convolution's module path (default: the first)")
    p.add_argument(
        "--normalize",
        default="filter",
        metavar="filter|shared",
        help="each filter by its own max |w| (default) or one scale for the layer",
    )
    p.add_argument(
        "--channels",
        default="8",
        metavar="K",
        help="deeper layers: the K strongest input channels per filter (default 8)",
    )
    _out_option(p, "filters.png")
    p.set_defaults(func=_filters)

    p = vs.add_parser("activations", help="each layer's activation maps for one input")
    _subject_options(p)
    _one_image_options(p)
    p.add_argument(
        "--layers",
        nargs="+",
        metavar="L",
        help="module paths (default: every convolution and pooling layer)",
    )
    _out_option(p, "activations.png")
    p.set_defaults(func=_activations)

    p = vs.add_parser(
        "maxact",
        help="the dataset patches that activate each channel most (one pass over the data)",
        description="For each channel of a layer, the images whose patch gives its largest "
        "response, cropped to the unit's exact receptive field (padding in pink), found in one "
        "batched pass over the split (Zeiler & Fergus 2013).",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--layer", required=True, help="module path of a convolution or pooling")
    p.add_argument(
        "--channels",
        default="8",
        metavar="K",
        help="the K channels with the largest filter norm (default 8)",
    )
    p.add_argument("--channel", nargs="+", metavar="C", help="these channels instead")
    p.add_argument("--top", default="9", metavar="N", help="patches per channel (default 9)")
    p.add_argument("--split", default="test", metavar="|".join(_SPLITS), help="default: test")
    p.add_argument("--limit", metavar="N", help="search the first N images only")
    p.add_argument("--weights", default="best", metavar="best|final", help="default best")
    p.add_argument(
        "--project",
        metavar="guided|deconvnet",
        help="beside each patch, its projection to the pixels",
    )
    _out_option(p, "maxact.png")
    p.set_defaults(func=_maxact)

    p = vs.add_parser(
        "gradcam",
        help="Grad-CAM: where in one image the evidence for a class is",
        description="The class score's gradient averaged over each map of a layer weights "
        "the maps; their rectified sum, scaled to the image, is the evidence map "
        "(Selvaraju et al. 2017).",
    )
    _subject_options(p)
    _one_image_options(p)
    p.add_argument("--layer", help="module path (default: the last convolution)")
    p.add_argument(
        "--class",
        dest="target_class",
        metavar="C",
        help="class index or name (default: the predicted one)",
    )
    _out_option(p, "gradcam.png")
    p.set_defaults(func=_gradcam)

    p = vs.add_parser(
        "arith",
        help="a filter sliding over its input: GIF, PNG strip, or page",
        description="The lecture's (N - F + 2P)/S + 1 animated: one frame per "
        "output position, the formula on each frame. A window that does not fit "
        "gives cnnlab arith's message and a picture of where it falls off. "
        "--html writes the interactive page (sliders, no network).",
    )
    p.add_argument("--input", type=int, required=True, metavar="N", help="input width (cells)")
    p.add_argument("--filter", type=int, required=True, metavar="F", help="filter size")
    p.add_argument("--stride", type=int, default=1, metavar="S", help="default 1")
    p.add_argument("--pad", type=int, default=0, metavar="P", help="zero padding per side")
    p.add_argument("--dilation", type=int, default=1, metavar="D")
    p.add_argument("--html", action="store_true", help="write the interactive page instead")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="default arith.gif (and arith-strip.png), arith.html with --html, "
        "arith-misfit.png for a window that does not fit",
    )
    p.set_defaults(func=_arith)

    p = vs.add_parser("arch", help="the network drawn as volumes (SVG and PNG)")
    _subject_options(p)
    p.add_argument("--block", help="draw the inside of one block (an inception module...)")
    _out_option(p, "arch.svg", "(the PNG beside it)")
    p.set_defaults(func=_arch)

    p = vs.add_parser("curves", help="a run's curves, confusion matrix, misclassified images")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument(
        "--weights",
        default="best",
        metavar="best|final",
        help="weights for the misclassified images (default best)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="look for the dataset here first")
    _out_option(p, "curves.png", "(and -confusion.png, -misclassified.png beside it)")
    p.set_defaults(func=_curves)

    p = sub.add_parser(
        "report",
        help="a run's report: one self-contained HTML page",
        description="One HTML page with everything embedded (no network): the run's config, "
        "the model's summary table from the analysis, curves, confusion matrix and per-class "
        "accuracy, first-layer filters, maximally activating patches, the architecture and "
        "test predictions. cnnlab train writes it at the end of every run.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--out", metavar="FILE", help="default RUN/report.html")
    p.add_argument("--weights", default="best", metavar="best|final", help="default best")
    p.add_argument("--data-dir", metavar="DIR", help="look for the dataset here first")
    p.set_defaults(func=_report)

    demo = sub.add_parser(
        "demo",
        help="the lecture's demonstrations, computed",
        description="Demonstrations of the lecture's claims, seeded and quick.",
    )
    ds = demo.add_subparsers(dest="demo_command", metavar="DEMO")
    demo.set_defaults(func=lambda args: _usage(demo))
    p = ds.add_parser(
        "approx",
        help="universal approximation: one wide hidden layer vs deeper nets, same parameters",
        description="Fit a continuous 1-D function with one hidden layer of growing width "
        "and with deeper ReLU networks of about the same parameter counts; plot the error "
        "against the parameters, and the fits (under a minute on a CPU).",
    )
    p.add_argument("--steps", default="1500", metavar="N", help="Adam steps per net (1500)")
    p.add_argument("--seed", default="0", metavar="S", help="default 0")
    p.add_argument("--threads", default="1", metavar="N", help="CPU threads (default 1)")
    _out_option(p, "approx.png")
    p.set_defaults(func=_approx)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _subject_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("subject", metavar="RUN|MODEL", help="run folder, zoo name, spec or file.py:f")
    p.add_argument("--input", metavar="CxHxW", help="input size of a model (default: its own)")
    p.add_argument("--weights", default="best", metavar="best|final", help="a run's weights")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="builder option")


def _one_image_options(p: argparse.ArgumentParser) -> None:
    """The one input image of a picture: a file, or an image of a dataset's split."""
    p.add_argument("--image", metavar="FILE", help="an image file (converted as predict does)")
    p.add_argument("--index", metavar="I", help="image I of a split of the run's dataset")
    p.add_argument("--split", default="test", metavar="|".join(_SPLITS), help="default: test")
    p.add_argument("--data", metavar="D", help="dataset (default: the run's own)")


def _out_option(p: argparse.ArgumentParser, default: str, more: str = "") -> None:
    p.add_argument("--out", default=default, metavar="FILE", help=f"default {default} {more}")


def _whole(option: str, text: str, low: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise CnnlabError(f"{option} {text!r}: expected a whole number >= {low}")
    return value


def _choice(option: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise CnnlabError(f"{option} {value!r}: expected one of {', '.join(valid)}")
    return value


def _subject(args: argparse.Namespace) -> Any:
    from cnnlab.viz.source import load_subject
    from cnnlab.zoo.target import parse_input_size, parse_options

    _choice("--weights", args.weights, ("best", "final"))
    shape = parse_input_size(args.input) if args.input else None
    return load_subject(
        args.subject, input_shape=shape, weights=args.weights, options=parse_options(args.option)
    )


def _write(path: Path, data: bytes | str, option: str = "--out") -> Path:
    from cnnlab import _io

    if path.is_dir():
        raise CnnlabError(f"{option} {path}: is a folder; give a file name")
    try:
        if isinstance(data, str):
            _io.atomic_write_text(path, data)
        else:
            _io.atomic_write_bytes(path, data)
    except OSError as exc:
        raise CnnlabError(f"{option} {path}: cannot write ({exc.strerror})") from None
    print(f"wrote {path}")
    return path


def _png(image: Any) -> bytes:
    """A PIL image's PNG bytes."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _beside(path: Path, tail: str) -> Path:
    return path.with_name(path.stem + tail)


# ----------------------------------------------------------------------------------- filters


def _filters(args: argparse.Namespace) -> int:
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.filters import NORMALIZATIONS, filter_figure, filter_tiles
    from cnnlab.viz.source import conv_layers, conv_weight, module_named

    _choice("--normalize", args.normalize, NORMALIZATIONS)
    channels = _whole("--channels", args.channels)
    s = _subject(args)
    name, module = module_named(s.model, args.layer)
    found = conv_weight(module)
    if found is None:
        convs = ", ".join(conv_layers(s.model)[:8]) or "none"
        raise CnnlabError(
            f"--layer {name}: not a 2-D convolution (it has no K x C x kh x kw kernel); the "
            f"model's convolutions: {convs}"
        )
    weight, mask = found
    tiles = filter_tiles(weight, normalize=args.normalize, max_channels=channels, mask=mask)
    k, c, kh, kw = weight.shape
    shown = len(set(tiles.filters))
    count = f"{k} filters" if shown == k else f"the first {shown} of {k} filters"
    title = f"{s.label}: {name}, {count} {kh}x{kw}x{c}"
    _write(Path(args.out), figure_bytes(filter_figure(tiles, title)))
    return 0


# ------------------------------------------------------------------------------- activations


def _activations(args: argparse.Namespace) -> int:
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.activations import activation_figure, activation_maps

    s = _subject(args)
    images, what, _ = _one_image(s, args)
    maps = activation_maps(s.model, _normalized(s, images)[0], args.layers)
    _write(Path(args.out), figure_bytes(activation_figure(maps, f"{s.label}: {what}")))
    return 0


def _one_image(s: Any, args: argparse.Namespace) -> tuple[Any, str, int | None]:
    """(uint8 image batch of one, what it is, its label or None) from --image or --index."""
    if (args.image is None) == (args.index is None):
        raise CnnlabError("give one input: --image FILE or --index I")
    if args.image is not None:
        from cnnlab.train.predict import load_images

        images, _ = load_images([args.image], s.input_shape)
        return images, Path(args.image).name, None
    index = _whole("--index", args.index, low=0)
    ds = _split(s, args.split, args.data)
    if index >= len(ds):
        raise CnnlabError(
            f"--index {index}: the {ds.split} split has {len(ds)} images (0..{len(ds) - 1})"
        )
    label = int(ds.labels[index])
    what = f"{ds.name} {ds.split} image {index} ({ds.classes[label]})"
    return ds.images[index : index + 1], what, label


def _normalized(s: Any, images: Any) -> Any:
    """uint8 images as the model sees them (an untrained model: mean 0, std 1)."""
    from cnnlab.viz.images import normalize

    c = images.shape[1]
    return normalize(images, s.mean or (0.0,) * c, s.std or (1.0,) * c)


def _gradcam(args: argparse.Namespace) -> int:
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.attribution import grad_cam, grad_cam_figure
    from cnnlab.viz.source import conv_layers, module_named

    s = _subject(args)
    images, what, _ = _one_image(s, args)
    if args.layer is None:
        convs = conv_layers(s.model)
        if not convs:
            raise CnnlabError("the model has no convolution; give --layer")
        layer = convs[-1]
    else:
        layer, _ = module_named(s.model, args.layer)
    target = None
    if args.target_class is not None:
        if args.target_class in s.classes:
            target = s.classes.index(args.target_class)
        else:
            target = _whole("--class", args.target_class, low=0)
    cam, cls = grad_cam(s.model, _normalized(s, images)[0], layer, target)
    name = s.classes[cls] if s.classes else str(cls)
    title = f"{s.label}: {what}\nGrad-CAM of class {name} at {layer}"
    _write(Path(args.out), figure_bytes(grad_cam_figure(images[0], cam, title)))
    return 0


def _split(s: Any, split: str, data: str | None) -> Any:
    _choice("--split", split, _SPLITS)
    if s.run is not None:
        from cnnlab.train.runs import run_split

        return run_split(s.run, split, data=data)
    if data is None:
        raise CnnlabError("an untrained model has no dataset: give --data D (or --image FILE)")
    if split == "val":
        raise CnnlabError("--split val is a run's held-out images; use test or train")
    from cnnlab.data import load_dataset

    ds = load_dataset(data, split)
    if tuple(ds.image_shape) != tuple(s.input_shape):
        raise CnnlabError(
            f"--data {data}: {ds.image_shape} images, the model takes {s.input_shape}; give --input"
        )
    return ds


# ------------------------------------------------------------------------------------ maxact


def _maxact(args: argparse.Namespace) -> int:
    from cnnlab.analysis import analyze
    from cnnlab.train.run import open_run
    from cnnlab.train.runs import run_split
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.maxact import max_activations, maxact_figure, strongest_channels
    from cnnlab.viz.source import module_named

    _choice("--weights", args.weights, ("best", "final"))
    _choice("--split", args.split, _SPLITS)
    top = _whole("--top", args.top)
    run = open_run(args.run)
    model = run.build_model(args.weights)
    layer, _ = module_named(model, args.layer)
    ds = run_split(run, args.split)
    if args.limit is not None:
        ds = ds.subset(list(range(min(_whole("--limit", args.limit), len(ds)))))
    if args.channel:
        channels = [_whole("--channel", c, low=0) for c in args.channel]
    else:
        channels = strongest_channels(model, layer, _whole("--channels", args.channels))
    analysis = analyze(model, run.input_shape)
    found = max_activations(
        model, ds, layer, channels, mean=run.mean, std=run.std, top=top, analysis=analysis
    )
    size = analysis.row(layer).field.size
    title = f"{run.record['target']} ({run.path.name}), {ds.name} {ds.split} ({len(ds):,} images)"
    projections = None
    if args.project is not None:
        from cnnlab.viz.attribution import METHODS
        from cnnlab.viz.maxact import project_patches

        _choice("--project", args.project, METHODS)
        projections = project_patches(
            model,
            ds,
            layer,
            found,
            mean=run.mean,
            std=run.std,
            method=args.project,
            analysis=analysis,
        )
    fig = maxact_figure(found, layer, size, title, projections, args.project or "")
    _write(Path(args.out), figure_bytes(fig))
    return 0


# ------------------------------------------------------------------------------------- arith


def _arith(args: argparse.Namespace) -> int:
    from cnnlab.geometry import fit
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.arith_frames import (
        arith_animation,
        gif_bytes,
        misfit,
        misfit_figure,
        strip_image,
    )
    from cnnlab.viz.arith_page import LIMITS, arith_page
    from cnnlab.viz.arithmetic import window_arithmetic

    settings = (args.input, args.filter, args.stride, args.pad, args.dilation)
    fit(*settings)  # a size that is not a size at all (0, negative) is refused here
    if args.html:
        for (key, (label, lo, _)), value in zip(LIMITS.items(), settings, strict=True):
            if value < lo:
                raise CnnlabError(f"--{key} {value}: {label} starts at {lo}")
        _write(Path(args.out or "arith.html"), arith_page(*settings))
        return 0
    out = Path(args.out or "arith.gif")
    try:
        worked = window_arithmetic(*settings)
    except GeometryError:
        _write(_beside(out, "-misfit.png"), figure_bytes(misfit_figure(misfit(*settings))))
        raise
    from cnnlab.cli.analysis import arith_lines

    if worked.output * worked.output > 400:
        raise CnnlabError(
            f"{worked.output}x{worked.output} output positions: too many frames "
            "for a GIF (at most 400); try --html, or a smaller --input"
        )
    anim = arith_animation(worked)
    sys.stdout.write("\n".join(arith_lines(worked)) + "\n")
    _write(out, gif_bytes(anim))
    _write(_beside(out, "-strip.png"), _png(strip_image(anim)))
    return 0


# -------------------------------------------------------------------------------------- arch


def _arch(args: argparse.Namespace) -> int:
    from cnnlab.analysis import analyze
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.arch import arch_boxes, arch_figure, block_boxes

    s = _subject(args)
    analysis = analyze(s.model, s.input_shape)
    if args.block:
        branches = block_boxes(analysis, args.block)
        from cnnlab.viz.arch import block_figure

        fig = block_figure(branches, f"{s.label}: {args.block}")
    else:
        fig = arch_figure(arch_boxes(analysis), s.label)
    out = Path(args.out)
    svg = out if out.suffix.lower() != ".png" else out.with_suffix(".svg")
    _write(svg, figure_bytes(fig, "svg"))
    _write(svg.with_suffix(".png"), figure_bytes(fig, "png"))
    return 0


# ------------------------------------------------------------------------------------ curves


def _curves(args: argparse.Namespace) -> int:
    from cnnlab.train.run import open_run
    from cnnlab.train.runs import run_split
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.curves import (
        confusion_figure,
        curves_figure,
        misclassified,
        read_curves,
        read_final,
    )
    from cnnlab.viz.grid import image_grid

    _choice("--weights", args.weights, ("best", "final"))
    run = open_run(args.run)
    out = Path(args.out)
    label = f"{run.record['target']} on {run.dataset}"
    _write(out, figure_bytes(curves_figure(read_curves(run), label)))
    final = read_final(run)
    fig = confusion_figure(final["confusion"], run.classes, f"{label}: test confusion")
    _write(_beside(out, "-confusion.png"), figure_bytes(fig))
    ds = run_split(run, "test", data_dir=args.data_dir)
    images, captions, _ = misclassified(run.build_model(args.weights), ds, run.mean, run.std)
    if len(captions):
        _write(_beside(out, "-misclassified.png"), _png(image_grid(images, captions, columns=6)))
    else:
        print("no misclassified test image")
    return 0


# ------------------------------------------------------------------------------------ report


def _report(args: argparse.Namespace) -> int:
    from cnnlab.viz.report import write_report

    _choice("--weights", args.weights, ("best", "final"))
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise CnnlabError(f"--out {out}: is a folder; give a file name")
    path = write_report(args.run, out, weights=args.weights, data_dir=args.data_dir)
    print(f"wrote {path}")
    return 0


# -------------------------------------------------------------------------------------- demo


def _approx(args: argparse.Namespace) -> int:
    from cnnlab.viz._figure import figure_bytes
    from cnnlab.viz.approx import approx_figure, approximation_demo

    steps = _whole("--steps", args.steps)
    grid, y, fits = approximation_demo(
        steps=steps,
        seed=_whole("--seed", args.seed, low=0),
        threads=_whole("--threads", args.threads),
    )
    print("depth  width  params  RMS error")
    for f in sorted(fits, key=lambda f: (f.depth, f.params)):
        print(f"{f.depth:5d}  {f.width:5d}  {f.params:6d}  {f.rms:.4f}")
    _write(Path(args.out), figure_bytes(approx_figure(grid, y, fits, steps)))
    return 0
