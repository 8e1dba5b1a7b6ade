// Shared helpers: CSRF-aware fetch for the JSON API, and live job progress bars.
window.Datanets = (function () {
  function cookie(name) {
    const m = document.cookie.match(new RegExp("(^|;\\s*)" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[2]) : "";
  }
  async function api(url, options = {}) {
    const headers = Object.assign({ "X-CSRFToken": cookie("csrftoken"), Accept: "application/json" }, options.headers || {});
    if (options.json !== undefined) { headers["Content-Type"] = "application/json"; options.body = JSON.stringify(options.json); }
    const res = await fetch(url, Object.assign({}, options, { headers, credentials: "same-origin" }));
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.detail) || ("Request failed with status " + res.status));
      err.status = res.status; err.body = body; throw err;
    }
    return body;
  }
  function fmtSeconds(s) {
    if (!isFinite(s) || s < 0) return "";
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }
  // Set once the person types or picks anything on this page; live jobs then stop reloading it.
  let editing = false;
  document.addEventListener("input", function (e) { if (e.target.matches && e.target.matches("input, textarea, select")) editing = true; });
  document.addEventListener("submit", function () { editing = true; });
  function watchJob(el) {
    const url = el.dataset.jobUrl, bar = el.querySelector(".bar"), status = el.querySelector(".job-status");
    const msg = el.querySelector(".job-message"), eta = el.querySelector(".job-eta");
    let firstDone = null;
    async function tick() {
      let job;
      try { job = await api(url); } catch (e) {
        if (e.status === 404) return;  // a job answers only to who started it (and staff): others see the bar as served
        setTimeout(tick, 2000); return;
      }
      bar.style.width = job.percent.toFixed(1) + "%";
      status.textContent = job.status; status.className = "job-status pill " + job.status;
      msg.textContent = job.message + (job.error ? " — " + job.error : "");
      if (job.status === "running" && job.progress_total > 0 && job.progress_done > 0) {
        if (firstDone === null) firstDone = { t: Date.now(), d: job.progress_done };
        const rate = (job.progress_done - firstDone.d) / Math.max((Date.now() - firstDone.t) / 1000, 0.001);
        const left = rate > 0 ? (job.progress_total - job.progress_done) / rate : NaN;
        eta.textContent = job.progress_done.toLocaleString() + " / " + job.progress_total.toLocaleString() + " " + job.progress_unit + (left ? " · about " + fmtSeconds(left) + " left" : "");
      }
      if (job.status === "queued" || job.status === "running") { setTimeout(tick, 700); }
      else if (el.dataset.reload && editing) {
        // Never throw away what the person is typing: offer the reload instead of doing it.
        msg.textContent = job.message + " · "; const a = document.createElement("a");
        a.href = window.location.href; a.textContent = "reload to see the result"; msg.appendChild(a);
      }
      else if (el.dataset.reload) { setTimeout(function () { if (!editing) window.location.reload(); }, 300); }  // show 100% briefly, then the result
    }
    tick();
  }
  document.querySelectorAll("[data-job-url]").forEach(function (el) {
    const s = el.querySelector(".job-status");
    if (s && (s.textContent === "queued" || s.textContent === "running")) watchJob(el);
  });
  return { api, cookie, fmtSeconds, watchJob };
})();
// Datanet form: the label set only matters for labeled text.
(function () {
  const kind = document.querySelector("select[name=record_kind]"), field = document.getElementById("field-labels_text");
  if (!kind || !field) return;
  const sync = () => { field.hidden = kind.value !== "labeled_text"; };
  kind.addEventListener("change", sync); sync();
})();
