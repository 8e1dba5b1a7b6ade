// Tiny dependency-free SVG line chart (offline: no CDN).
window.DatanetsCharts = {
  // Drawn in the chart's own pixels (viewBox = its rendered width), so labels stay 11 px on a phone or in a column.
  fit(svg, H) {
    const W = Math.max(240, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H); svg.setAttribute("height", H);
    return W;
  },
  line(svg, points, opts = {}) {
    const H = 220, L = 48, B = 24, T = 10, R = 10, W = this.fit(svg, H);
    svg.innerHTML = "";
    if (!points.length) { svg.innerHTML = '<text x="' + W / 2 + '" y="110" text-anchor="middle" fill="#667085">no data yet</text>'; return; }
    const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = x => L + (W - L - R) * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
    const sy = y => T + (H - T - B) * (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0));
    const ns = "http://www.w3.org/2000/svg";
    const el = (name, attrs, text) => { const e = document.createElementNS(ns, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#ced4da" });
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#ced4da" });
    for (const y of [y0, (y0 + y1) / 2, y1]) el("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end", "font-size": 11, fill: "#667085" }, y.toFixed(3));
    el("text", { x: L, y: H - 6, "font-size": 11, fill: "#667085" }, String(x0));
    el("text", { x: W - R, y: H - 6, "text-anchor": "end", "font-size": 11, fill: "#667085" }, (opts.xlabel || "step") + " " + x1);
    el("polyline", { points: points.map(p => sx(p[0]) + "," + sy(p[1])).join(" "), fill: "none", stroke: "#3b5bdb", "stroke-width": 2 });
  },
  // Exponential moving average, bias-corrected (as TensorBoard smooths), so the first points are not pulled to 0.
  smooth(points, weight) {
    let avg = 0, n = 0;
    return points.map(p => { n += 1; avg = weight * avg + (1 - weight) * p[1]; return [p[0], avg / (1 - Math.pow(weight, n))]; });
  },
  // Training loss: raw per step (faint) and smoothed (solid); validation loss per evaluation (dots); labelled axes.
  // stepsPerEpoch (optional): a faint vertical mark and "epoch N" where each epoch ends.
  loss(svg, train, val, stepsPerEpoch) {
    const H = 220, L = 56, B = 34, T = 10, R = 10, W = this.fit(svg, H);
    svg.innerHTML = "";
    if (!train.length && !val.length) { svg.innerHTML = '<text x="' + W / 2 + '" y="110" text-anchor="middle" fill="#667085">no steps yet</text>'; return; }
    const all = train.concat(val), xs = all.map(p => p[0]), ys = all.map(p => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = x => L + (W - L - R) * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
    const sy = y => T + (H - T - B) * (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0));
    const ns = "http://www.w3.org/2000/svg";
    const el = (name, attrs, text) => { const e = document.createElementNS(ns, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
    const grey = { "font-size": 11, fill: "#667085" };
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#ced4da" });
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#ced4da" });
    for (const y of [y0, (y0 + y1) / 2, y1]) el("text", { ...grey, x: L - 6, y: sy(y) + 4, "text-anchor": "end" }, y.toFixed(3));
    el("text", { ...grey, x: L, y: H - B + 14, "text-anchor": "middle" }, String(x0));
    el("text", { ...grey, x: W - R, y: H - B + 14, "text-anchor": "end" }, String(x1));
    el("text", { ...grey, x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "training step");
    el("text", { ...grey, x: 12, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (T + H - B) / 2 + ")" }, "loss");
    if (stepsPerEpoch > 0) {
      for (let n = 1, x = stepsPerEpoch; x <= x1 && n < 200; n += 1, x = n * stepsPerEpoch) {
        if (x < x0) continue;
        el("line", { "data-series": "epoch", x1: sx(x), y1: T, x2: sx(x), y2: H - B, stroke: "#adb5bd", "stroke-dasharray": "2 3" });
        el("text", { ...grey, x: sx(x) - 3, y: T + 38, "text-anchor": "end", "font-size": 10 }, "epoch " + n);
      }
    }
    const line = (pts, attrs) => el("polyline", { points: pts.map(p => sx(p[0]) + "," + sy(p[1])).join(" "), fill: "none", ...attrs });
    if (train.length) {
      line(train, { "data-series": "raw", stroke: "#3b5bdb", "stroke-opacity": 0.25, "stroke-width": 1 });
      line(this.smooth(train, train.length > 20 ? 0.9 : 0.6), { "data-series": "smoothed", stroke: "#3b5bdb", "stroke-width": 2 });
    }
    if (val.length > 1) line(val, { stroke: "#e8590c", "stroke-width": 1.5, "stroke-dasharray": "4 3" });
    for (const p of val) el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: "#e8590c" });
    el("text", { ...grey, x: W - R, y: T + 10, "text-anchor": "end", fill: "#3b5bdb" }, "training (smoothed)");
    if (val.length) el("text", { ...grey, x: W - R, y: T + 24, "text-anchor": "end", fill: "#e8590c" }, "validation");
  },
};
(function () {
  document.querySelectorAll("svg[data-loss]").forEach(async svg => {
    const run = await window.Datanets.api(svg.dataset.loss);
    window.DatanetsCharts.loss(svg, run.loss_history || [], run.eval_history || [], run.steps_per_epoch);
  });
})();
