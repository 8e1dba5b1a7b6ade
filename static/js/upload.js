// Drag-and-drop upload in chunks. Resumable: after a network error it asks the server how many bytes arrived
// and continues from there; the whole file is never read into memory at once.
(function () {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("file-input");
  const box = document.getElementById("upload-status"), bar = document.getElementById("upload-bar");
  const text = document.getElementById("upload-text");
  const chunkSize = parseInt(zone.dataset.chunk, 10), maxBytes = parseInt(zone.dataset.max, 10);
  const api = window.Datanets.api;

  function show(msg, pct) { box.hidden = false; text.textContent = msg; if (pct !== undefined) bar.style.width = pct.toFixed(1) + "%"; }

  async function putChunk(uploadId, offset, blob) {
    const res = await fetch("/api/uploads/" + uploadId + "/chunk/", {
      method: "PUT", credentials: "same-origin", body: blob,
      headers: { "Upload-Offset": String(offset), "Content-Type": "application/octet-stream", "X-CSRFToken": window.Datanets.cookie("csrftoken") },
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 409 && body.received !== undefined) return body.received;  // resume where the server is
    if (!res.ok) { const e = new Error(body.detail || "Upload failed (" + res.status + ")"); e.fatal = res.status < 500; throw e; }
    return body.received;
  }

  async function send(file) {
    if (file.size > maxBytes) { show("This file is " + file.size.toLocaleString() + " bytes; the limit is " + maxBytes.toLocaleString() + ". Split it or gzip it.", 0); return; }
    let columnMap;
    const raw = document.getElementById("column-map").value.trim();
    if (raw) { try { columnMap = JSON.parse(raw); } catch (e) { show("The column mapping is not valid JSON.", 0); return; } }
    show("Starting upload of " + file.name + "…", 0);
    let upload;
    try {
      upload = await api("/api/datanets/" + zone.dataset.datanet + "/uploads/", { method: "POST", json: { filename: file.name, size: file.size, column_map: columnMap } });
    } catch (e) { show(e.message, 0); return; }
    let offset = 0, failures = 0;
    const started = Date.now();
    while (offset < file.size) {
      try {
        offset = await putChunk(upload.id, offset, file.slice(offset, Math.min(offset + chunkSize, file.size)));
        failures = 0;
      } catch (e) {
        if (e.fatal || ++failures > 8) { show(e.message, offset / file.size * 100); return; }
        show("Connection problem; retrying (" + failures + ")…");
        await new Promise(r => setTimeout(r, 500 * 2 ** failures));
        try { offset = (await api("/api/uploads/" + upload.id + "/")).received; } catch (_) { /* retry loop */ }
        continue;
      }
      const secs = (Date.now() - started) / 1000, rate = offset / Math.max(secs, 0.001);
      show("Uploaded " + offset.toLocaleString() + " of " + file.size.toLocaleString() + " bytes · about " + window.Datanets.fmtSeconds((file.size - offset) / rate) + " left", offset / file.size * 100);
    }
    show("All " + file.size.toLocaleString() + " bytes sent; checking the file…", 100);
    try {
      const c = await api("/api/uploads/" + upload.id + "/complete/", { method: "POST" });
      show(c.message, 100);
      window.location.href = "/d/" + zone.dataset.datanet + "/contributions/" + c.id + "/" + (c.duplicate_file ? "?same_file=1" : "");
    } catch (e) { show(e.message, 100); }
  }

  zone.addEventListener("dragover", e => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", e => { e.preventDefault(); zone.classList.remove("over"); if (e.dataTransfer.files.length) send(e.dataTransfer.files[0]); });
  input.addEventListener("change", () => { if (input.files.length) send(input.files[0]); });
})();
