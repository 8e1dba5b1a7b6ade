(function () {
  const form = document.getElementById("playground");
  if (!form) return;
  const out = document.getElementById("playground-out");
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const body = {};
    body[form.dataset.kind === "classifier" ? "text" : "prompt"] = form.input.value;
    if (form.max_tokens) body.max_tokens = parseInt(form.max_tokens.value, 10);
    if (form.temperature) body.temperature = parseFloat(form.temperature.value);
    out.textContent = "Running…";
    try {
      const r = await window.Datanets.api(form.dataset.url, { method: "POST", json: body });
      document.getElementById("balance").textContent = r.balance;
      if (r.output.label !== undefined) {
        const probs = Object.entries(r.output.probabilities).map(([k, v]) => k + " " + (v * 100).toFixed(1) + "%").join(" · ");
        out.innerHTML = "<p><strong></strong></p><p class='muted'></p>";
        out.querySelector("strong").textContent = r.output.label;
        out.querySelector(".muted").textContent = probs + " · " + r.latency_ms.toFixed(0) + " ms · fee " + r.fee;
        if (r.output.low_confidence) {
          const badge = document.createElement("span");
          badge.className = "pill pending"; badge.dataset.testid = "low-confidence";
          badge.title = "The top probability is close to chance, or the two likeliest labels are close: treat this answer as a guess.";
          badge.textContent = "low confidence";
          out.querySelector("p").append(" ", badge);
        }
        if (r.output.truncated) {
          const t = document.createElement("p"); t.className = "muted"; t.dataset.testid = "truncated";
          t.textContent = "Truncated: the model read the first " + r.output.tokens_kept + " of " + r.output.tokens_in + " tokens, as in training.";
          out.appendChild(t);
        }
      } else {
        out.innerHTML = "<pre></pre><p class='muted'></p>";
        const pre = out.querySelector("pre");
        if (r.output.text.trim()) pre.textContent = r.output.text;
        else { pre.className = "muted"; pre.textContent = "(no text: the model produced only whitespace or special tokens)"; }
        out.querySelector(".muted").textContent = r.tokens_out + " tokens · " + r.latency_ms.toFixed(0) + " ms · fee " + r.fee;
      }
      const note = document.createElement("p");
      if (r.receipt) { note.innerHTML = "<a data-testid='explain-link'>Explain this output</a> · receipt <code></code>"; note.querySelector("a").href = r.receipt.explain_url; note.querySelector("code").textContent = r.receipt.id.slice(0, 16) + "…"; }
      else { note.className = "muted"; note.textContent = "Attribution: " + r.attribution.message; }
      out.appendChild(note);
    } catch (err) { out.innerHTML = "<p class='msg error'></p>"; out.querySelector("p").textContent = err.message; }
  });
})();
