// A function's containers, live: the server-rendered table is fetched again every second.
(function () {
  "use strict";
  const box = document.getElementById("containers");
  if (!box || !window.fetch) return; // the page's <noscript> reload
  const live = document.getElementById("live-containers");
  live.hidden = false;
  let busy = false;
  setInterval(() => {
    if (busy || document.hidden) return;
    busy = true;
    fetch(box.dataset.part, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (html !== null) box.innerHTML = html;
      })
      .catch(() => {})
      .finally(() => {
        busy = false;
      });
  }, 1000);
})();
