// Rewards pages: bar charts of earnings, and claiming through an injected wallet (window.ethereum) when present.
(function () {
  const ns = "http://www.w3.org/2000/svg";
  function bars(svg, rows, unit) {
    const H = 220, L = 56, B = 28, T = 10, R = 10;
    // The chart's own pixels (viewBox = rendered width): labels stay 11 px on a phone or in a narrow column.
    const W = Math.max(240, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H); svg.setAttribute("height", H);
    svg.innerHTML = "";
    const el = (name, attrs, text) => { const e = document.createElementNS(ns, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
    if (!rows.length) { el("text", { x: W / 2, y: 110, "text-anchor": "middle", fill: "#667085" }, "nothing yet"); return; }
    const max = Math.max(...rows.map(r => r[1])) || 1;
    const w = (W - L - R) / rows.length;
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#ced4da" });
    el("text", { x: L - 6, y: T + 10, "text-anchor": "end", "font-size": 11, fill: "#667085" }, max.toLocaleString());
    rows.forEach((r, i) => {
      const h = (H - T - B) * (r[1] / max);
      el("rect", { x: L + i * w + w * 0.15, y: H - B - h, width: w * 0.7, height: h, fill: "#748ffc" }).appendChild(
        Object.assign(document.createElementNS(ns, "title"), { textContent: `${unit} ${r[0]}: ${r[1]}` }));
      el("text", { x: L + i * w + w / 2, y: H - 10, "text-anchor": "middle", "font-size": 11, fill: "#667085" }, String(r[0]).slice(0, 14));
    });
  }
  const data = document.getElementById("earnings-chart");
  if (data) {
    const chart = JSON.parse(data.textContent);
    bars(document.getElementById("epoch-chart"), chart.epochs, "epoch");
    bars(document.getElementById("datanet-chart"), chart.datanets, "");
  }

  const box = document.getElementById("claim");
  const button = document.getElementById("claim-injected");
  if (box && button && window.ethereum && box.dataset.calldata) {
    button.hidden = false;
    const out = document.getElementById("claim-result");
    button.addEventListener("click", async () => {
      try {
        const [from] = await window.ethereum.request({ method: "eth_requestAccounts" });
        if (from.toLowerCase() !== box.dataset.address.toLowerCase()) {
          out.textContent = `Your wallet is on ${from}; switch to ${box.dataset.address} (any account may send, but use yours to pay your own gas).`;
        }
        const chainHex = "0x" + Number(box.dataset.chainId).toString(16);
        try { await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId: chainHex }] }); } catch (e) { /* the wallet may already be there */ }
        const hash = await window.ethereum.request({ method: "eth_sendTransaction", params: [{ from, to: box.dataset.distributor, data: box.dataset.calldata }] });
        out.textContent = `Sent ${hash}. The contract pays ${box.dataset.address}; reload once it is mined.`;
      } catch (e) {
        out.textContent = `The wallet did not send the claim: ${e.message || e}`;
      }
    });
  }
})();
