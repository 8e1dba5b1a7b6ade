// Review queue: approve (a), reject (r), skip (s), move (j/k). Votes go to the same API as every other client.
(function () {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const items = () => Array.from(queue.querySelectorAll(".review-item"));
  function current() { return queue.querySelector(".review-item.current"); }
  function select(el) { items().forEach(i => i.classList.remove("current")); if (el) { el.classList.add("current"); el.scrollIntoView({ block: "nearest" }); } }
  function next(from) { const list = items(), i = list.indexOf(from); for (let j = i + 1; j < list.length; j++) if (!list[j].classList.contains("done")) return list[j]; return null; }
  function prev(from) { const list = items(), i = list.indexOf(from); return i > 0 ? list[i - 1] : from; }
  function skip(item) {
    if (item.dataset.voted) return;
    item.classList.add("done", "skipped");
    item.querySelector(".result").textContent = "Skipped: no vote sent; it stays in your queue for next time.";
    select(next(item) || item);
  }
  async function vote(item, decision) {
    const result = item.querySelector(".result"), box = item.querySelector(".reason"), reason = box.value.trim();
    if (item.dataset.voted || item.dataset.sending) return;  // a second press (double click) sends nothing
    if (decision === "reject" && !reason) {
      result.textContent = "Say why you reject it (type a reason first).";
      box.focus(); return;
    }
    item.dataset.sending = "1";
    try {
      const rec = await window.Datanets.api("/api/records/" + item.dataset.record + "/votes/", { method: "POST", json: { decision, reason } });
      result.textContent = rec.status === "pending" ? "Voted " + decision + " · waiting for more votes" : "Voted " + decision + " · record " + rec.status;
      item.classList.remove("skipped"); item.classList.add("done", "voted"); item.dataset.voted = decision;
      item.querySelectorAll(".actions button, .actions input").forEach(el => { el.disabled = true; });
      const pill = item.querySelector("header .pill");
      if (pill) pill.textContent = rec.approvals + "✓ " + rec.rejections + "✗";
      select(next(item));
    } catch (e) { result.textContent = e.message; }
    finally { delete item.dataset.sending; }
  }
  queue.addEventListener("click", e => {
    const item = e.target.closest(".review-item"); if (!item) return;
    if (e.target.dataset.decision) vote(item, e.target.dataset.decision);
    else if (e.target.classList.contains("skip")) skip(item);
    else select(item);
  });
  document.addEventListener("keydown", e => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const active = document.activeElement;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName)) {
      if (e.key === "Escape") active.blur();
      else if (e.key === "Enter" && active.classList.contains("reason")) { e.preventDefault(); active.blur(); vote(active.closest(".review-item"), "reject"); }
      return;
    }
    const item = current(); if (!item) return;
    const keys = { a: () => vote(item, "approve"), r: () => vote(item, "reject"), s: () => skip(item), j: () => select(next(item) || item), k: () => select(prev(item)) };
    if (!keys[e.key]) return;
    e.preventDefault();  // the key acts; it must not also type itself into the box it focuses
    keys[e.key]();
  });
})();
