"""Benchmark: cnnlab's static analysis end to end against building the model on the CPU and
running torchinfo.summary or fvcore's FlopCountAnalysis on it.

    python bench/analysis.py --setup      # once: torchinfo + fvcore into build/bench-compare
    python bench/analysis.py [--repeat 3] [--markdown]
    python bench/analysis.py --all --repeat 1 --tools cnnlab,torchinfo   # every zoo model
    python bench/analysis.py --case lenet5@32 --repeat 10 --stat min --tools cnnlab,torchinfo

Every measurement runs in a fresh Python process, so that its peak RSS (ru_maxrss) is its own
and no cache of an earlier run helps it.  Timed: building the model and analysing it, in that
process, after ``import torch, cnnlab`` and the tool (import times are printed separately).

* cnnlab: what ``cnnlab summary NAME`` does: the spec path, ``cnnlab.zoo.model_spec`` (the
  model's notation, no module built) then ``cnnlab.analysis.analyze_spec`` (timed as one;
  "build" is the ``model_spec`` part).
* cnnlab-module: the module path, ``build_on_meta(create_model, ...)`` (shape-only weights,
  no initialisation) then ``cnnlab.analysis.analyze``: what any ``nn.Module`` gets.
* torchinfo: ``create_model(...)`` (real CPU weights, initialised) then
  ``torchinfo.summary(model, input_size=(1, 3, S, S), verbose=0)``.
* fvcore: ``create_model(...)`` then ``FlopCountAnalysis(model, x).total()``.

The same ``nn.Module`` class and input for all three, each model at its own input size and
channels (LeNet-5: 1x32x32).  The default cases are the small networks, where per-op tracing
costs the most against a real forward (LeNet-5, CIFAR ResNets up to ResNet-1202), and the
large ones of the ImageNet zoo; ``--all`` runs every model of the zoo at its own input size.
The tools' processes take turns (one of each, ``--repeat`` times), so that they share
whatever else the machine runs; ``--stat`` reports the median or the fastest (``min``) of
them.  The time ratio is the tool's time divided by cnnlab's; "peak RSS" is the process's
maximum resident set, "+RSS" its growth over the process right after the imports.  The MACs
each tool reports are printed too (they differ by what each counts: see the conventions in the
README).
The CPU model, its vector flags and the load average (before and after) are printed, and
how much of each timing is the build of the model.  Every
process runs PyTorch single-threaded (``--threads 1``, the default): cnnlab runs no kernel,
but the tools' real forwards on two threads slow down up to 20x on a machine busy with other
work (measured here: torchinfo on ResNet-20, 0.017 s on one thread, 0.32-0.44 s on two at
load average 4), which would make the ratios measure the load.  On a quiet machine two
threads make the large forwards (VGG-16 at 224: 15 GMACs) up to about 2x faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from options import count

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "build" / "bench-compare"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-compare.txt"

CASES = [
    ("lenet5", 32),
    ("lenet5_modern", 32),
    ("resnet20", 32),
    ("resnet110", 32),
    ("resnet1202", 32),
    ("alexnet", 227),
    ("resnet50", 224),
    ("resnet152", 224),
    ("vgg16", 224),
    ("googlenet", 224),
    ("vgg16", 1024),
]
METHODS = ("cnnlab", "cnnlab-module", "torchinfo", "fvcore")


def setup() -> None:
    COMPARE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(COMPARE), "-r", str(REQUIREMENTS)],
        check=True,
    )  # fmt: skip
    print(f"installed the comparison tools into {COMPARE}")


def _rss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(method: str, name: str, size: int, threads: int) -> dict:
    t0 = time.perf_counter()
    import torch

    if threads:
        torch.set_num_threads(threads)

    import cnnlab

    cnnlab.list_models()  # registers the zoo (imports of the model files)
    if method == "torchinfo":
        import torchinfo
    elif method == "fvcore":
        import warnings

        from fvcore.nn import FlopCountAnalysis

        warnings.filterwarnings("ignore")
    elif method == "cnnlab":
        from cnnlab.analysis import analyze_spec, build_on_meta
        from cnnlab.zoo import model_spec
    elif method == "cnnlab-module":
        from cnnlab.analysis import analyze
        from cnnlab.analysis.meta import build_on_meta
    t_import = time.perf_counter() - t0
    default = cnnlab.model_info(name).input_size
    channels = default[0]
    options = {} if size == default[1] else {"input_size": size}
    rss0 = _rss_kib()
    t1 = time.perf_counter()
    if method == "cnnlab":
        plan = model_spec(name, **options)
        t_built = time.perf_counter()
        result = analyze_spec(
            plan, build=lambda: build_on_meta(cnnlab.create_model, name, **options)
        )
        macs = result.totals.macs
    elif method == "cnnlab-module":
        model = build_on_meta(cnnlab.create_model, name, **options)
        t_built = time.perf_counter()
        macs = analyze(model, (channels, size, size)).totals.macs
    elif method == "torchinfo":
        model = cnnlab.create_model(name, **options)
        t_built = time.perf_counter()
        stats = torchinfo.summary(model, input_size=(1, channels, size, size), verbose=0)
        macs = stats.total_mult_adds
    else:
        model = cnnlab.create_model(name, **options)
        t_built = time.perf_counter()
        model.eval()
        flops = FlopCountAnalysis(model, torch.randn(1, channels, size, size))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = flops.total()
    seconds = time.perf_counter() - t1
    return {
        "seconds": seconds,
        "build_seconds": t_built - t1,
        "import_seconds": t_import,
        "peak_rss_kib": _rss_kib(),
        "grown_rss_kib": _rss_kib() - rss0,
        "macs": int(macs),
    }


def measure(method: str, name: str, size: int, threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(COMPARE), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", method, name, str(size), str(threads)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{method} {name} {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="install torchinfo and fvcore")
    parser.add_argument("--repeat", type=count, default=3, help="fresh processes per measurement")
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="what of the processes' times is reported: min (the fastest) is the least at the "
        "mercy of other load on the machine for times of a few milliseconds",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--case", action="append", help="NAME@SIZE, e.g. resnet50@224")
    parser.add_argument("--all", action="store_true", help="every zoo model at its input size")
    parser.add_argument(
        "--tools", default=",".join(METHODS), help="comma-separated, e.g. cnnlab,torchinfo"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in every process (0: PyTorch's default); see the module docstring",
    )
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "NAME", "SIZE", "THREADS"))
    args = parser.parse_args()
    if args.worker:
        method, name, size, threads = args.worker
        print(json.dumps(worker(method, name, int(size), int(threads))))
        return
    if args.setup:
        setup()
        return
    if not (COMPARE / "torchinfo").exists() or not (COMPARE / "fvcore").exists():
        raise SystemExit("run `python bench/analysis.py --setup` first (installs the tools)")
    cases = CASES
    if args.case:
        cases = [(c.split("@")[0], int(c.split("@")[1])) for c in args.case]
    if args.all:
        sys.path.insert(0, str(ROOT / "src"))
        import cnnlab

        cases = [(n, cnnlab.model_info(n).input_size[1]) for n in cnnlab.list_models()]
    methods = tuple(m for m in METHODS if m in args.tools.split(","))
    if "cnnlab" not in methods:
        raise SystemExit("--tools must include cnnlab (the ratios are against it)")
    threads = args.threads or "PyTorch's default"
    print(f"python {sys.version.split()[0]}, {_cpu()}, torch threads {threads}, loadavg "
          f"{_load()}", flush=True)  # fmt: skip
    stat = min if args.stat == "min" else statistics.median
    results = []
    for name, size in cases:
        row = {"model": name, "size": size}
        # One process at 1024 for the CPU tools: building VGG-16 for 1024x1024 means
        # allocating and initialising 2.2 billion fc6 weights (8.8 GB).
        counts = {m: 1 if (size > 224 and not m.startswith("cnnlab")) else args.repeat
                  for m in methods}  # fmt: skip
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for i in range(max(counts.values())):
            for method in methods:  # the tools in turn, so that they share the machine's load
                if i < counts[method]:
                    runs[method].append(measure(method, name, size, args.threads))
        for method in methods:
            n, mine = counts[method], runs[method]
            row[method] = {
                "seconds": stat(r["seconds"] for r in mine),
                "build_seconds": stat(r["build_seconds"] for r in mine),
                "import_seconds": stat(r["import_seconds"] for r in mine),
                "peak_rss_mb": max(r["peak_rss_kib"] for r in mine) / 1024,
                "grown_rss_mb": max(r["grown_rss_kib"] for r in mine) / 1024,
                "macs": mine[0]["macs"],
                "runs": n,
            }
            print(f"  {name}@{size} {method}: {row[method]['seconds']:.3f} s, peak "
                  f"{row[method]['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        results.append(row)
    print(f"loadavg at the end {_load()}", flush=True)
    _report(results, args.markdown, methods)


def _cpu() -> str:
    """The CPU model, its core count and the vector flags that matter to PyTorch's kernels."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs, flags {' '.join(shown) or 'none of avx2/avx512/amx'}"


def _load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def _report(results: list[dict], markdown: bool, methods: tuple[str, ...]) -> None:
    others = [m for m in methods if m != "cnnlab"]
    head = ["model @ input", "cnnlab s"]
    for m in others:
        head += [f"build+{m} s", "ratio"]
    head += [f"peak RSS MB {' / '.join(methods)}", f"+RSS MB {' / '.join(methods)}"]
    lines = []
    for r in results:
        c = r["cnnlab"]
        line = [f"{r['model']} @ {r['size']}", f"{c['seconds']:.4f}"]  # (0.1 ms)
        for m in others:
            line += [f"{r[m]['seconds']:.4f}", f"{r[m]['seconds'] / c['seconds']:.2f}x"]
        line += [
            " / ".join(f"{r[m]['peak_rss_mb']:.0f}" for m in methods),
            " / ".join(f"{r[m]['grown_rss_mb']:.0f}" for m in methods),
        ]
        lines.append(line)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        for line in lines:
            print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)))
    print()
    print("MACs reported (cnnlab: conv+linear, bias excluded; torchinfo adds bias and BN; "
          "fvcore adds BN and pooling):")  # fmt: skip
    for r in results:
        print(f"  {r['model']} @ {r['size']}: "
              + ", ".join(f"{m} {r[m]['macs']:,}" for m in methods))  # fmt: skip
    print("of which building the model (cnnlab on the meta device, the tools on the CPU):")
    for r in results:
        print(f"  {r['model']} @ {r['size']}: "
              + ", ".join(f"{m} {r[m]['build_seconds']:.4f} of {r[m]['seconds']:.4f} s"
                          for m in methods))  # fmt: skip
    imports = {m: statistics.median(r[m]["import_seconds"] for r in results) for m in methods}
    print("import time (not in the timings above, median): " + ", ".join(
        f"{m} {s:.2f} s" for m, s in imports.items()))  # fmt: skip


if __name__ == "__main__":
    main()
