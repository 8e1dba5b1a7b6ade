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
    // Before the first step the run reports its phase (loading, tokenizing, embedding) with counts and rate.
    const phase = run.phase || {};
    const active = job.status === "queued" || job.status === "running";
    if (phase.name && active) {
      let text = phase.name + " " + phase.done.toLocaleString() + " / " + phase.total.toLocaleString() + " " + phase.unit;
      if (phase.rate) text += " · " + phase.rate.toFixed(1) + "/s";
      $("run-phase").textContent = text; $("run-phase").hidden = false;
    } else { $("run-phase").hidden = true; }
    $("run-step").textContent = run.total_steps ? run.step + " / " + run.total_steps : "–";
    $("run-epoch").textContent = run.epoch.toFixed(2);
    $("run-speed").textContent = run.examples_per_s.toFixed(1);
    $("run-eta").textContent = run.eta_s != null && job.status === "running" ? window.Datanets.fmtSeconds(run.eta_s) : "–";
    window.DatanetsCharts.loss($("loss-chart"), run.loss_history || [], run.eval_history || [], run.steps_per_epoch);
    if (job.status === "queued" || job.status === "running") setTimeout(tick, 1000);
    else if (run.version && !$("run-version").textContent.trim()) window.location.reload();
  }
  tick();
})();
