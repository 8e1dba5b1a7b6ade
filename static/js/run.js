// Live training progress: polls the run and redraws the bar, the figures and the loss chart.
(function () {
  const box = document.getElementById("run");
  if (!box) return;
  const $ = id => document.getElementById(id);
  async function tick() {
    let run;
    try { run = await window.Datanets.api(box.dataset.runUrl); } catch (e) { setTimeout(tick, 2000); return; }
    const job = run.job;
    $("run-bar").style.width = job.percent.toFixed(1) + "%";
    $("run-status").textContent = job.status; $("run-status").className = "pill " + job.status;
    $("run-text").textContent = job.message + (job.error ? " — " + job.error : "");
    $("run-step").textContent = run.step + " / " + run.total_steps;
    $("run-epoch").textContent = run.epoch.toFixed(2);
    $("run-speed").textContent = run.examples_per_s.toFixed(1);
    $("run-eta").textContent = run.eta_s != null && job.status === "running" ? window.Datanets.fmtSeconds(run.eta_s) : "–";
    window.DatanetsCharts.line($("loss-chart"), run.loss_history || []);
    if (job.status === "queued" || job.status === "running") setTimeout(tick, 1000);
    else if (run.version && !$("run-version").textContent.trim()) window.location.reload();
  }
  tick();
})();
