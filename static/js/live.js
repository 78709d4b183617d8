// optscan live events: progress and rows over SSE while a scan runs (app.js must load first).
// Plain JavaScript, no inline handlers (strict CSP); without EventSource the page still works.
(function () {
  "use strict";

  var page = window.optscanPage;
  if (!page) { return; }
  var $ = page.$, $$ = page.$$, setText = page.setText, plural = page.plural;
  var resultsSection = page.resultsSection, resultsTable = page.resultsTable;
  var groups = page.groups, reapplySort = page.reapplySort, applyFilter = page.applyFilter;
  var markSide = page.markSide, loadResults = page.loadResults;

  var SIDE_WORDS = { put: "puts", call: "calls" };

  function progressPanel() { return $("#progress"); }

  function setSummary(text, kind) {
    var summary = $("#scan-summary");
    if (!summary) { return; }
    var p = document.createElement("p");
    p.className = "alert alert-" + kind;
    p.textContent = text;
    summary.replaceChildren(p);
  }

  function enterLiveMode(data) {
    var section = resultsSection();
    if (!section) { return; }
    section.setAttribute("data-mode", "live");
    section.setAttribute("data-side", data.side);
    if (data.scan_id) { section.setAttribute("data-scan-id", data.scan_id); }
    groups().forEach(function (body) { body.remove(); });
    var failure = $("#last-failure");
    if (failure) { failure.hidden = true; }
    var meta = $("#result-meta");
    if (meta) {
      meta.replaceChildren();
      var badge = document.createElement("span");
      badge.className = "badge badge-live";
      badge.textContent = "live";
      meta.appendChild(badge);
      meta.appendChild(document.createTextNode(
        " Scan of " + (SIDE_WORDS[data.side] || data.side) +
        " in progress: rows appear as each symbol finishes."));
    }
    var title = $("#results-title .muted");
    setText(title, "· " + (SIDE_WORDS[data.side] || data.side));
    markSide(data.side);
    applyFilter();
    setText($("#results-empty"), "No matches yet.");
  }

  function onStarted(data) {
    var panel = progressPanel();
    if (panel) {
      panel.hidden = false;
      if (data.scan_id) { panel.setAttribute("data-scan-id", data.scan_id); }
    }
    var bar = $("#progress-bar");
    if (bar) { bar.max = Math.max(data.total || 0, 1); bar.value = 0; }
    setText($("#progress-text"), "0 of " + plural(data.total || 0, "symbol") + "; starting…");
    setText($("#progress-who"), "Started by " + data.trigger + ": " +
      plural(data.total || 0, "symbol") + ", " + (SIDE_WORDS[data.side] || data.side) + ".");
    var summary = $("#scan-summary");
    if (summary) { summary.replaceChildren(); }
    enterLiveMode(data);
  }

  function ensureLive() {
    var section = resultsSection();
    var panel = progressPanel();
    if (panel) { panel.hidden = false; }
    return section && section.getAttribute("data-mode") === "live";
  }

  function onProgress(data) {
    ensureLive();
    var bar = $("#progress-bar");
    if (bar) { bar.max = Math.max(data.total, 1); bar.value = data.index; }
    var words = data.index + " of " + plural(data.total, "symbol") + ", last " + data.symbol +
      "; " + data.matches_so_far + " matches so far";
    if (data.failed_so_far) { words += "; " + data.failed_so_far + " failed"; }
    if (data.eta_s !== null && data.eta_s !== undefined && data.index < data.total) {
      words += "; about " + Math.ceil(data.eta_s) + " s left";
    }
    setText($("#progress-text"), words + ".");
  }

  function onSymbolDone(data) {
    if (!ensureLive()) { return; } // the stored table is showing: its rows are not this scan's
    var table = resultsTable();
    if (!table) { return; }
    // Idempotent: a replayed event replaces the section it inserted before.
    groups().forEach(function (body) {
      if (body.getAttribute("data-symbol") === data.symbol) { body.remove(); }
    });
    if (data.html) {
      var holder = document.createElement("table");
      holder.innerHTML = data.html;
      var fresh = holder.tBodies[0];
      // Sections stay in symbol order, whatever order the symbols finish in.
      var after = groups().filter(function (body) {
        return (body.getAttribute("data-symbol") || "") > data.symbol;
      })[0];
      if (fresh) { table.insertBefore(fresh, after || null); }
    }
    reapplySort(table);
    applyFilter();
  }

  function finish(data, text, kind) {
    var bar = $("#progress-bar");
    if (bar && kind === "ok") { bar.value = bar.max; }
    var section = resultsSection();
    var side = data.side || (section && section.getAttribute("data-side")) || "put";
    setSummary(text, kind);
    setText($("#progress-text"), kind === "ok" ? "Finished." : "Stopped.");
    var panel = progressPanel();
    if (panel) { panel.hidden = true; } // the summary says how it ended
    // "Started" and "already running" answers are out of date now.
    $$('#scan-outcome [data-outcome="started"], #scan-outcome [data-outcome="busy"]')
      .forEach(function (element) { element.remove(); });
    loadResults(side);
  }

  // An alert went out (or failed) after a scan: the last-scan card says how, once reloaded.
  function onAlert() {
    var section = resultsSection();
    if (!section || section.getAttribute("data-mode") === "live") { return; }
    loadResults(section.getAttribute("data-side") || "put");
  }

  function onFinished(data) { finish(data, data.message || "Scan finished.", "ok"); }
  function onFailed(data) { finish(data, data.reason || "The scan failed.", "error"); }

  function listen(handler) {
    return function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (err) { return; }
      handler(data);
    };
  }

  function connect() {
    var url = document.body.getAttribute("data-stream-url");
    if (!url || !("EventSource" in window)) { return; }
    var source = new EventSource(url);
    source.addEventListener("scan-started", listen(onStarted));
    source.addEventListener("progress", listen(onProgress));
    source.addEventListener("symbol-done", listen(onSymbolDone));
    source.addEventListener("scan-finished", listen(onFinished));
    source.addEventListener("scan-failed", listen(onFailed));
    source.addEventListener("alert", listen(onAlert));
    source.addEventListener("open", function () { document.body.removeAttribute("data-stream-lost"); });
    // The browser reconnects by itself (sending Last-Event-ID); just show that it is away.
    source.addEventListener("error", function () { document.body.setAttribute("data-stream-lost", "true"); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
