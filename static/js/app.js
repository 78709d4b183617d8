// optscan page script: the scan form over fetch(), sorting and filtering (live.js adds live events).
// Plain JavaScript, no dependencies, no inline handlers (the page runs under a strict CSP).
// Without it the page still works: forms post and the server answers with a full page.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  var $ = function (selector, root) { return (root || document).querySelector(selector); };
  var $$ = function (selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  };

  function csrfToken() {
    var meta = $('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function setText(element, text) {
    if (element) { element.textContent = text; }
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  // ---------------------------------------------------------------- results table

  function resultsSection() { return $("#results"); }
  function resultsTable() { return $("#results-table"); }
  // One <tbody class="group"> per symbol: a head row, then that symbol's rows.
  function groups() {
    var table = resultsTable();
    return table ? Array.prototype.slice.call(table.tBodies) : [];
  }
  function dataRows(body) { return $$("tr:not([data-group-head])", body); }

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-v") : "";
    if (!numeric) { return raw || ""; }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }

  function sortRows(table, index, direction) {
    var header = table.tHead.rows[0].cells[index];
    var numeric = header && header.getAttribute("data-kind") === "number";
    var factor = direction === "descending" ? -1 : 1;
    // Rows are sorted within their symbol's section; the sections stay in symbol order.
    groups().forEach(function (body) {
      var rows = dataRows(body);
      rows.sort(function (a, b) {
        var x = cellKey(a, index, numeric);
        var y = cellKey(b, index, numeric);
        // Rows without a value go last whichever way the column is sorted.
        if (x === null || x === "") { return (y === null || y === "") ? 0 : 1; }
        if (y === null || y === "") { return -1; }
        if (numeric) { return (x - y) * factor; }
        return x.localeCompare(y) * factor;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
    $$("th", table.tHead).forEach(function (th, i) {
      if (i === index) { th.setAttribute("aria-sort", direction); }
      else { th.removeAttribute("aria-sort"); }
    });
    table.setAttribute("data-sort-index", String(index));
    table.setAttribute("data-sort-dir", direction);
  }

  function reapplySort(table) {
    if (!table || !table.hasAttribute("data-sort-index")) { return; }
    sortRows(table, parseInt(table.getAttribute("data-sort-index"), 10),
      table.getAttribute("data-sort-dir"));
  }

  function applyFilter() {
    var input = $("#symbol-filter");
    if (!input || !resultsTable()) { return; }
    var query = input.value.trim().toUpperCase();
    var shown = 0;
    var total = 0;
    groups().forEach(function (body) {
      var symbol = body.getAttribute("data-symbol") || "";
      var visible = !query || symbol.indexOf(query) === 0;
      var count = dataRows(body).length;
      body.hidden = !visible;
      total += count;
      if (visible) { shown += count; }
    });
    setText($("#filter-count"), query ? shown + " of " + total + " rows" : "");
    var empty = $("#results-empty");
    if (empty) { empty.hidden = shown > 0; }
    // Every change of the rows shown ends here: tell the chart (static/js/results-chart.js).
    document.dispatchEvent(new CustomEvent("optscan:rows-changed"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("#results-table th button.sort");
    if (!button) { return; }
    var th = button.closest("th");
    var table = th.closest("table");
    var index = Array.prototype.indexOf.call(th.parentNode.cells, th);
    var next = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    // Numbers read best largest first on the first click (returns, open interest).
    if (!th.hasAttribute("aria-sort") && th.getAttribute("data-kind") === "number") {
      next = "descending";
    }
    sortRows(table, index, next);
  });

  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "symbol-filter") { applyFilter(); }
  });

  // "Show all" on a symbol's head line: its rows past the best N appear, or hide again. The
  // link also works without this script (the server renders every row: ?all=1).
  function setExpanded(body, expanded) {
    $$("tr[data-beyond-top]", body).forEach(function (row) { row.hidden = !expanded; });
    if (expanded) { body.setAttribute("data-expanded", ""); }
    else { body.removeAttribute("data-expanded"); }
    var link = $("a[data-show-all]", body);
    if (link) {
      link.textContent = expanded ? "show the best " + body.getAttribute("data-top") :
        "show all " + body.getAttribute("data-count");
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("#results-table a[data-show-all]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
    event.preventDefault();
    var body = link.closest("tbody");
    setExpanded(body, !body.hasAttribute("data-expanded"));
    applyFilter();
  });

  // ---------------------------------------------------------------- results partial

  function resultsUrl(side) {
    var section = resultsSection();
    var base = section ? section.getAttribute("data-results-url") : "/results";
    return base + "?side=" + encodeURIComponent(side);
  }

  function markSide(side) {
    $$("[data-side-link]").forEach(function (link) {
      if (link.getAttribute("data-side-link") === side) { link.setAttribute("aria-current", "true"); }
      else { link.removeAttribute("aria-current"); }
    });
    $$('#scan-form input[name="side"]').forEach(function (radio) {
      radio.checked = radio.value === side;
    });
  }

  // A partial may carry <template data-oob> parts for elements elsewhere on the page.
  function swapOutOfBand(root) {
    if (!root) { return; }
    $$("template[data-oob]", root).forEach(function (template) {
      var fresh = template.content.firstElementChild;
      var current = fresh && fresh.id ? document.getElementById(fresh.id) : null;
      if (current) { current.replaceWith(fresh); }
      template.remove();
    });
  }

  var resultsRequest = 0;

  function loadResults(side) {
    var ticket = ++resultsRequest;
    var oldTable = $("#results-table");
    var sortIndex = oldTable ? oldTable.getAttribute("data-sort-index") : null;
    var sortDir = oldTable ? oldTable.getAttribute("data-sort-dir") : null;
    var filter = $("#symbol-filter") ? $("#symbol-filter").value : "";
    return fetch(resultsUrl(side), {
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    }).then(function (response) {
      return response.text().then(function (html) {
        if (ticket !== resultsRequest) { return; } // a newer request won
        if (!response.ok) { throw new Error("results " + response.status); }
        var section = resultsSection();
        if (!section) { return; }
        section.outerHTML = html;
        swapOutOfBand(resultsSection());
        var input = $("#symbol-filter");
        if (input) { input.value = filter; }
        var table = $("#results-table");
        if (table && sortIndex !== null) {
          table.setAttribute("data-sort-index", sortIndex);
          table.setAttribute("data-sort-dir", sortDir);
          reapplySort(table);
        }
        applyFilter();
        markSide(side);
      });
    }).catch(function () {
      setText($("#result-meta"), "The results could not be loaded; reload the page.");
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-side-link]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
    var section = resultsSection();
    // While a scan fills the table live, a click elsewhere would hide it: follow the link.
    if (section && section.getAttribute("data-mode") === "live") { return; }
    event.preventDefault();
    var side = link.getAttribute("data-side-link");
    loadResults(side).then(function () {
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", link.getAttribute("href"));
      }
    });
  });

  // ---------------------------------------------------------------- scan form

  function showOutcome(html) {
    var box = $("#scan-outcome");
    if (box) { box.innerHTML = html; }
  }

  function showOutcomeText(text) {
    var box = $("#scan-outcome");
    if (!box) { return; }
    var div = document.createElement("div");
    div.className = "alert alert-error";
    div.setAttribute("role", "alert");
    div.textContent = text;
    box.replaceChildren(div);
  }

  function submitScan(form, submitter) {
    var body = new FormData(form);
    if (submitter && submitter.name) { body.append(submitter.name, submitter.value); }
    var buttons = $$("button[type=submit]", form);
    buttons.forEach(function (b) { b.disabled = true; });
    form.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRFToken": csrfToken() },
    }).then(function (response) {
      return response.text().then(function (html) {
        if (html.trim()) { showOutcome(html); }
        else { showOutcomeText("The server answered " + response.status + " with no message."); }
      });
    }).catch(function () {
      showOutcomeText("The server could not be reached; check the connection and try again.");
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
      form.removeAttribute("aria-busy");
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    // "Save as default" and its like post the page as a plain form: the answer is a redirect.
    if (event.submitter && event.submitter.hasAttribute("data-plain-submit")) { return; }
    if (form.matches("form[data-scan-form]")) {
      event.preventDefault();
      submitScan(form, event.submitter);
    } else if (form.matches("form[data-filter-form]")) {
      event.preventDefault(); // filtering happens as you type
      applyFilter();
    }
  });

  // What live.js needs from this file: one small namespace instead of globals.
  window.optscanPage = {
    $: $,
    $$: $$,
    setText: setText,
    plural: plural,
    resultsSection: resultsSection,
    resultsTable: resultsTable,
    groups: groups,
    reapplySort: reapplySort,
    applyFilter: applyFilter,
    markSide: markSide,
    loadResults: loadResults
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", applyFilter);
  } else {
    applyFilter();
  }
})();
