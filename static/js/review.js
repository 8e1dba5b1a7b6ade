// Review queue: approve (a), reject (r), skip (s), move (j/k). Votes go to the same API as every other client.
(function () {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const items = () => Array.from(queue.querySelectorAll(".review-item"));
  function current() { return queue.querySelector(".review-item.current"); }
  function select(el) { items().forEach(i => i.classList.remove("current")); if (el) { el.classList.add("current"); el.scrollIntoView({ block: "nearest" }); } }
  function next(from) { const list = items(), i = list.indexOf(from); for (let j = i + 1; j < list.length; j++) if (!list[j].classList.contains("done")) return list[j]; return null; }
  function prev(from) { const list = items(), i = list.indexOf(from); return i > 0 ? list[i - 1] : from; }
  async function vote(item, decision) {
    const result = item.querySelector(".result"), reason = item.querySelector(".reason").value.trim();
    if (decision === "reject" && !reason) { result.textContent = "Say why you reject it (type a reason first)."; item.querySelector(".reason").focus(); return; }
    try {
      const rec = await window.Datanets.api("/api/records/" + item.dataset.record + "/votes/", { method: "POST", json: { decision, reason } });
      result.textContent = rec.status === "pending" ? "Voted " + decision + " · waiting for more votes" : "Voted " + decision + " · record " + rec.status;
      item.classList.add("done"); item.dataset.voted = decision;
      const pill = item.querySelector("header .pill");
      if (pill) pill.textContent = rec.approvals + "✓ " + rec.rejections + "✗";
      select(next(item));
    } catch (e) { result.textContent = e.message; }
  }
  queue.addEventListener("click", e => {
    const item = e.target.closest(".review-item"); if (!item) return;
    if (e.target.dataset.decision) vote(item, e.target.dataset.decision);
    else if (e.target.classList.contains("skip")) { item.classList.add("done"); select(next(item)); }
    else select(item);
  });
  document.addEventListener("keydown", e => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) { if (e.key === "Escape") document.activeElement.blur(); return; }
    const item = current(); if (!item) return;
    if (e.key === "a") vote(item, "approve");
    else if (e.key === "r") vote(item, "reject");
    else if (e.key === "s" || e.key === "j") { if (e.key === "s") item.classList.add("done"); select(next(item) || item); }
    else if (e.key === "k") select(prev(item));
  });
})();
