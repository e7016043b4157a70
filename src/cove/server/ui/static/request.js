// The request page, live: the progress bar and the timeline follow the request's event
// stream (Server-Sent Events), the logs follow its log stream, and the other sections are
// swapped for fresh server-rendered fragments when calls start and finish.
(function () {
  "use strict";
  const root = document.getElementById("request");
  if (!root || !window.EventSource || !window.fetch) return; // the page's <noscript> reload
  const api = root.dataset.api;
  const page = root.dataset.page;
  let finished = root.dataset.finished === "true";

  // -- sections re-rendered by the server ---------------------------------------------------
  const pending = new Set();
  let timer = null;
  function refresh(parts, delay) {
    parts.forEach((p) => pending.add(p));
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const parts = Array.from(pending);
      pending.clear();
      parts.forEach((part) => {
        fetch(page + "/part/" + part, { credentials: "same-origin" })
          .then((r) => (r.ok ? r.text() : null))
          .then((html) => {
            const el = document.getElementById("part-" + part);
            if (html === null || !el) return;
            el.innerHTML = html;
            // The journal may lag the event stream: keep what the events said last.
            if (part === "summary") {
              if (lastProgress) showProgress(lastProgress);
              if (lastStatus) showStatus(lastStatus);
            }
          })
          .catch(() => {});
      });
    }, delay);
  }

  // -- progress ---------------------------------------------------------------------------
  let lastProgress = null;
  let lastStatus = null;
  function showProgress(d) {
    lastProgress = d;
    const bar = document.getElementById("progress-bar");
    const box = document.getElementById("progress");
    const text = document.getElementById("progress-text");
    if (!bar || !text) return;
    const pct = d.total ? Math.max(0, Math.min(100, (100 * d.current) / d.total)) : 0;
    const shown = Math.round(pct * 10) / 10;
    bar.style.width = shown + "%";
    box.setAttribute("aria-valuenow", String(shown));
    text.textContent =
      shown + " % · " + d.current + " / " + d.total + (d.message ? " · " + d.message : "");
  }
  function showStatus(status) {
    lastStatus = status;
    const el = document.getElementById("status");
    if (!el) return;
    el.textContent = status;
    el.className = "status status-" + status;
  }

  let running = null;
  if (!finished) {
    const events = new EventSource(api + "/progress");
    events.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    events.addEventListener("request_started", () => showStatus("running"));
    ["call_started", "call_finished"].forEach((type) =>
      events.addEventListener(type, () => refresh(["timeline", "summary"], 150))
    );
    events.addEventListener("request_finished", (e) => {
      const d = JSON.parse(e.data);
      finished = true;
      events.close();
      clearInterval(running);
      showStatus(d.status);
      refresh(["summary", "timeline", "output", "state", "metrics"], 0);
    });
    // Running bars grow with the clock between events.
    running = setInterval(() => refresh(["timeline"], 0), 1000);
  }

  // -- logs -------------------------------------------------------------------------------
  const table = document.querySelector("#logs tbody");
  const live = document.getElementById("live-logs");
  const fn = root.dataset.function;
  let last = Number(root.dataset.lastLog || 0);
  const select = document.getElementById("log-function");
  if (select) {
    select.addEventListener("change", () => {
      const url = new URL(window.location.href);
      if (select.value) url.searchParams.set("function", select.value);
      else url.searchParams.delete("function");
      window.location.href = url.toString();
    });
  }
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function clock(iso) {
    return iso ? iso.replace("T", " ").slice(0, 23) : "";
  }
  function addLine(d) {
    if (d.id <= last) return; // a reconnect replays what the page already shows
    last = d.id;
    const none = document.getElementById("no-logs");
    if (none) none.remove();
    const row = document.createElement("tr");
    row.className = "log stream-" + d.stream;
    row.dataset.id = String(d.id);
    row.dataset.function = d.function;
    cell(row, clock(d.at));
    cell(row, d.function);
    cell(row, d.call_id + " #" + d.attempt);
    cell(row, d.level || d.stream);
    cell(row, d.message, "message");
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    table.appendChild(row);
    if (atBottom) row.scrollIntoView({ block: "nearest" });
  }
  if (!finished && table) {
    let url = api + "/logs?follow=true&after=" + last;
    if (fn) url += "&function=" + encodeURIComponent(fn);
    const lines = new EventSource(url);
    live.hidden = false;
    lines.addEventListener("log", (e) => addLine(JSON.parse(e.data)));
    lines.addEventListener("error", () => {
      // The stream ends when the request finishes; then stop instead of reconnecting.
      if (finished) {
        lines.close();
        live.hidden = true;
      }
    });
  }
})();
