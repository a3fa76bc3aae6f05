// Holdfast dashboard behaviour: errors into the alert area, the restore dialog,
// live job progress from the server-sent event stream, and the uPlot charts.
(function () {
  "use strict";

  function humanBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n.toFixed(0) + " B" : n.toFixed(1) + " " + units[i];
  }

  // A refused request shows its one line in the alert area, never a page of HTML.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    const xhr = evt.detail.xhr;
    if (xhr.status >= 400) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
      evt.detail.target = document.getElementById("alerts");
      evt.detail.swapOverride = "innerHTML";
    }
  });
  document.addEventListener("htmx:sendError", function () {
    document.getElementById("alerts").innerHTML =
      '<p class="error" role="alert">The daemon did not answer; is it running?</p>';
  });
  document.addEventListener("click", function (evt) {
    const target = evt.target;
    if (!(target instanceof Element)) return;
    if (target.matches("[data-dismiss]")) target.closest("p").remove();
    if (target.matches("[data-close-dialog]")) document.getElementById("dialog").close();
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    const dialog = document.getElementById("dialog");
    if (evt.detail.target && evt.detail.target.id === "dialog-body" && !dialog.open) {
      dialog.showModal();
      const first = dialog.querySelector("input, button");
      if (first) first.focus();
    }
    watchJobs(evt.detail.target);
  });

  // Live progress: each running job card follows its event stream; at the end
  // the server renders the card again (with a restore's connection details).
  function watchJobs(root) {
    (root || document).querySelectorAll("[data-events]").forEach(function (card) {
      if (card.dataset.watching) return;
      card.dataset.watching = "1";
      const source = new EventSource(card.dataset.events);
      const set = function (field, text) {
        const el = card.querySelector('[data-field="' + field + '"]');
        if (el) el.textContent = text;
      };
      const update = function (job) {
        set("status", job.status);
        set("phase", job.phase || job.status);
        set("bytes", humanBytes(job.bytes_done));
        set("rate", humanBytes(job.rate) + "/s");
        card.dataset.status = job.status;
        const bar = card.querySelector("progress");
        if (bar && job.bytes_total) { bar.max = job.bytes_total; bar.value = job.bytes_done || 0; }
      };
      source.addEventListener("progress", function (e) { update(JSON.parse(e.data)); });
      source.addEventListener("end", function (e) {
        source.close();
        update(JSON.parse(e.data));
        htmx.ajax("GET", "/ui/jobs/" + card.dataset.job, { target: card, swap: "outerHTML" });
      });
      source.onerror = function () { if (source.readyState === EventSource.CLOSED) card.dataset.watching = ""; };
    });
  }

  function drawCharts() {
    const data = document.getElementById("series");
    if (!data || typeof uPlot === "undefined") return;
    const series = JSON.parse(data.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      const key = el.dataset.chart;
      const bytes = key === "size";
      const lines = bytes ? [{}, { label: "stored", stroke: "#3b5bdb", value: (u, v) => humanBytes(v) },
                                 { label: "raw", stroke: "#1a7f37", value: (u, v) => humanBytes(v) }]
                          : [{}, { label: "seconds", stroke: "#b26a00" }];
      const values = bytes ? [series.time, series.size, series.raw] : [series.time, series.seconds];
      const chart = new uPlot({ width: Math.max(200, el.clientWidth), height: 200, series: lines,
        axes: [{}, { values: bytes ? (u, ticks) => ticks.map(humanBytes) : undefined, size: 70 }] },
        values, el);
      // Follow the page's width (a phone turned, a window resized).
      new ResizeObserver(function () {
        chart.setSize({ width: Math.max(200, el.clientWidth), height: 200 });
      }).observe(el);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { watchJobs(document); drawCharts(); });
})();
