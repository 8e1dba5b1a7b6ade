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
};
(function () {
  document.querySelectorAll("svg[data-loss]").forEach(async svg => {
    const run = await window.Datanets.api(svg.dataset.loss);
    window.DatanetsCharts.line(svg, run.loss_history || []);
  });
})();
