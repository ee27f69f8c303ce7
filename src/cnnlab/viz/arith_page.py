"""The sliding window as an interactive, self-contained page: sliders for input, filter,
stride, padding and dilation; the animation, the output size and the "does not fit" case
update as they move.  Plain JavaScript in one HTML file: no network, no library.

The page computes the lecture's ``(N - F + 2P)/S + 1`` itself (a page cannot call Python);
the tests hold it to :func:`cnnlab.geometry.fit` over many settings in a real browser.
"""

from __future__ import annotations

import html

__all__ = ["LIMITS", "arith_page"]

# slider: (label, lowest, highest)
LIMITS = {
    "input": ("input N", 1, 32),
    "filter": ("filter F", 1, 11),
    "stride": ("stride S", 1, 8),
    "pad": ("padding P", 0, 8),
    "dilation": ("dilation D", 1, 4),
}

# Nothing may be fetched: inline style and script, data: images only.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 60em; }
.sliders { display: grid; grid-template-columns: 8em 16em 3em; gap: .3em .8em;
  align-items: center; }
#formula { font-family: monospace; font-size: 1.15em; margin: .8em 0 .3em; }
#status.fits { color: #2a6f2a; } #status.misfit { color: #b22222; font-weight: bold; }
canvas { border: 1px solid #ccc; margin-top: .6em; }
.legend span { display: inline-block; width: .9em; height: .9em; margin: 0 .3em 0 1em;
  vertical-align: middle; border: 1px solid #555; }
"""

_SCRIPT = r"""
"use strict";
const ids = ["input", "filter", "stride", "pad", "dilation"];
const el = id => document.getElementById(id);
let frame = 0;

function settings() {
  const v = {};
  for (const id of ids) v[id] = parseInt(el(id).value, 10);
  return v;
}

// The lecture's output size, as cnnlab.geometry.fit computes it.
function arithmetic(v) {
  const span = v.dilation * (v.filter - 1) + 1;  // cells a dilated window covers
  const padded = v.input + 2 * v.pad;
  const num = padded - span;
  const exact = num / v.stride + 1;
  const output = Math.floor(num / v.stride) + 1;  // floor, as PyTorch (may be < 1)
  const whole = num % v.stride === 0;
  const fits = whole && output >= 1;
  const shown = whole ? String(exact) : exact.toFixed(2);
  const formula = `(${v.input} - ${span} + 2*${v.pad})/${v.stride} + 1 = ${shown}`;
  return {span, padded, exact, output, fits, shown, formula};
}

function update() {
  const v = settings();
  for (const id of ids) el(id + "-value").textContent = v[id];
  const a = arithmetic(v);
  el("formula").textContent = "output = (N - F + 2P)/S + 1 = " + a.formula;
  const status = el("status");
  if (a.fits) {
    status.className = "fits";
    status.textContent = "fits";
    el("output-size").textContent = `${a.output}x${a.output}`;
    el("explain").textContent = `${v.input}x${v.input} input, ${v.filter}x${v.filter} filter` +
      `, stride ${v.stride}, pad ${v.pad} -> ${a.output}x${a.output} output`;
  } else {
    status.className = "misfit";
    status.textContent = "does not fit";
    el("output-size").textContent = a.output >= 1
      ? `(PyTorch rounds down to ${a.output}x${a.output})`
      : "(no output: the window is larger than the padded input)";
    el("explain").textContent = `${a.shown} is not a whole number: a ${v.filter}x${v.filter} ` +
      `filter at stride ${v.stride} does not tile a ${v.input}x${v.input} input` +
      (v.pad ? ` padded by ${v.pad}` : "");
  }
  frame = 0;
  draw();
}

function draw() {
  const v = settings();
  const a = arithmetic(v);
  const canvas = el("canvas");
  const ctx = canvas.getContext("2d");
  const outN = a.fits ? a.output : 0;
  const fitting = Math.max(a.output, 0);  // windows that fit before the one that falls off
  const over = a.fits ? 0 : Math.max(0, fitting * v.stride + a.span - a.padded);
  const cells = a.padded + over + (outN ? outN + 2 : 0);
  const cell = Math.max(6, Math.min(28, Math.floor(760 / Math.max(cells, 1))));
  canvas.width = cell * cells + 20;
  canvas.height = cell * Math.max(a.padded, a.span) + 20;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const x0 = 10, y0 = 10;
  for (let r = 0; r < a.padded; r++) {
    for (let c = 0; c < a.padded; c++) {
      const inside = r >= v.pad && r < v.pad + v.input && c >= v.pad && c < v.pad + v.input;
      ctx.fillStyle = inside ? "#ffffff" : "#d9d9d9";
      ctx.fillRect(x0 + c * cell, y0 + r * cell, cell, cell);
      ctx.strokeStyle = "#555";
      ctx.strokeRect(x0 + c * cell, y0 + r * cell, cell, cell);
    }
  }
  if (a.fits) {
    const k = frame % (outN * outN);
    const orow = Math.floor(k / outN), ocol = k % outN;
    ctx.fillStyle = "#f28e2b";
    for (let i = 0; i < v.filter; i++) {
      for (let j = 0; j < v.filter; j++) {
        const r = orow * v.stride + i * v.dilation, c = ocol * v.stride + j * v.dilation;
        ctx.fillRect(x0 + c * cell + 1, y0 + r * cell + 1, cell - 2, cell - 2);
      }
    }
    const ox = x0 + (a.padded + 2) * cell;
    for (let r = 0; r < outN; r++) {
      for (let c = 0; c < outN; c++) {
        const n = r * outN + c;
        ctx.fillStyle = n < k ? "#4e79a7" : n === k ? "#f28e2b" : "#ffffff";
        ctx.fillRect(ox + c * cell, y0 + r * cell, cell, cell);
        ctx.strokeStyle = "#555";
        ctx.strokeRect(ox + c * cell, y0 + r * cell, cell, cell);
      }
    }
    el("position").textContent = `output[${orow}, ${ocol}] reads rows ` +
      `${orow * v.stride - v.pad}..${orow * v.stride + a.span - 1 - v.pad}, cols ` +
      `${ocol * v.stride - v.pad}..${ocol * v.stride + a.span - 1 - v.pad}`;
  } else {
    // The windows along the top: those that fit, then the one that falls off the edge.
    const count = fitting + 1;
    for (let k = 0; k < count; k++) {
      const last = k === count - 1;
      ctx.lineWidth = 3;
      ctx.strokeStyle = last ? "#e15759" : "#4e79a7";
      if (last) {
        ctx.fillStyle = "rgba(225, 87, 89, 0.35)";
        ctx.fillRect(x0 + k * v.stride * cell, y0, a.span * cell, a.span * cell);
      }
      ctx.strokeRect(x0 + k * v.stride * cell + 2 * k, y0 + 2 * k, a.span * cell, a.span * cell);
    }
    ctx.lineWidth = 1;
    el("position").textContent = `window ${count} (start ${fitting * v.stride - v.pad}) runs ` +
      `${over} cell(s) past the edge`;
  }
}

for (const id of ids) el(id).addEventListener("input", update);
el("play").addEventListener("click", () => {
  el("play").textContent = el("play").textContent === "pause" ? "play" : "pause";
});
setInterval(() => {
  if (el("play").textContent === "pause") { frame += 1; draw(); }
}, 600);
update();
"""


def arith_page(
    size: int = 7, kernel: int = 3, stride: int = 2, padding: int = 1, dilation: int = 1
) -> str:
    """The page's HTML, its sliders starting at the given settings (a slider's range grows
    to hold a larger starting value)."""
    start = {
        "input": size,
        "filter": kernel,
        "stride": stride,
        "pad": padding,
        "dilation": dilation,
    }
    rows = []
    for key, (label, lo, hi) in LIMITS.items():
        value = start[key]
        rows.append(
            f'<label for="{key}">{label}</label>'
            f'<input type="range" id="{key}" min="{lo}" max="{max(hi, value)}" '
            f'value="{value}"><span id="{key}-value">{value}</span>'
        )
    title = "cnnlab: a window sliding over its input"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{html.escape(title)}</title><link rel="icon" href="data:,">
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>The lecture's output size <code>(N - F + 2P)/S + 1</code> (F the dilated span
<code>D(F-1)+1</code>). Move a slider: the window, the output and the formula follow.</p>
<div class="sliders">
{chr(10).join(rows)}
</div>
<div id="formula"></div>
<div><span id="status"></span> <span id="output-size"></span></div>
<div id="explain"></div>
<div class="legend"><span style="background:#d9d9d9"></span>padding
<span style="background:#f28e2b"></span>the window's taps
<span style="background:#4e79a7"></span>outputs done
<button id="play" type="button">pause</button></div>
<canvas id="canvas" width="400" height="300"></canvas>
<div id="position"></div>
<script>{_SCRIPT}</script>
</body></html>
"""
