// The results page's risk/return chart: annualized return against |delta|, one point per row
// shown in the table (rows past a symbol's best N count once shown), coloured by symbol. It reads the table (the same data-v values the
// sorting uses), so stored rows, live rows and a swapped-in results section all draw alike;
// app.js announces each change of the table with an "optscan:rows-changed" event.
(function () {
  "use strict";

  var charts = window.optscanCharts;
  if (!charts) { return; }

  function columnIndex(table, name) {
    var header = table.tHead ? table.tHead.rows[0] : null;
    if (!header) { return -1; }
    for (var i = 0; i < header.cells.length; i++) {
      if (header.cells[i].getAttribute("data-col") === name) { return i; }
    }
    return -1;
  }

  function value(row, index) {
    var cell = index >= 0 ? row.cells[index] : null;
    return cell ? cell.getAttribute("data-v") || "" : "";
  }

  // The visible rows as one series per symbol, in symbol order; and how many had no delta.
  function readTable(table) {
    var col = {
      ret: columnIndex(table, "annualized_return"),
      delta: columnIndex(table, "delta"),
      expiry: columnIndex(table, "expiration"),
      strike: columnIndex(table, "strike"),
    };
    var bySymbol = {};
    var order = [];
    var skipped = 0;
    Array.prototype.forEach.call(table.tBodies, function (body) {
      if (body.hidden) { return; } // filtered out
      Array.prototype.forEach.call(body.rows, function (row) {
        // The head line, and rows past the symbol's best N until "show all".
        if (row.hasAttribute("data-group-head") || row.hidden) { return; }
        var y = parseFloat(value(row, col.ret));
        var delta = parseFloat(value(row, col.delta));
        if (isNaN(y) || isNaN(delta)) { skipped += 1; return; }
        var symbol = row.getAttribute("data-symbol") || "";
        if (!bySymbol[symbol]) { bySymbol[symbol] = []; order.push(symbol); }
        bySymbol[symbol].push({
          x: Math.abs(delta),
          y: y,
          name: row.getAttribute("data-contract") || symbol,
          expiry: value(row, col.expiry),
          strike: parseFloat(value(row, col.strike)),
        });
      });
    });
    order.sort();
    return {
      series: order.map(function (s) { return { label: s, points: bySymbol[s] }; }),
      skipped: skipped,
    };
  }

  function describe(point, series) {
    var strike = isNaN(point.strike) ? "" : ", strike " + point.strike.toFixed(2);
    return series.label + " " + point.expiry + strike + ": " + point.y.toFixed(1) +
      " % annualized, |delta| " + point.x.toFixed(3);
  }

  var current = null; // the chart drawn last; a swapped-in section brings a new canvas

  function redraw() {
    var figure = document.getElementById("risk-return");
    var table = document.getElementById("results-table");
    var canvas = figure ? figure.querySelector("canvas") : null;
    if (!figure || !table || !canvas) { return; }
    var found = readTable(table);
    var points = found.series.reduce(function (n, s) { return n + s.points.length; }, 0);
    figure.hidden = points === 0;
    var note = figure.querySelector("[data-chart-note]");
    if (note) {
      note.textContent = found.skipped ?
        " " + found.skipped + " row" + (found.skipped === 1 ? "" : "s") +
        " without a delta not drawn." : "";
    }
    if (current && current.canvas !== canvas) { current.destroy(); }
    current = charts.scatter(canvas, found.series, {
      xTitle: "|delta|",
      yTitle: "annualized return, %",
      xFormat: function (v) { return Number(v).toFixed(2); },
      // One decimal where the axis is narrow (46.5 %), none on whole numbers.
      yFormat: function (v) { return Number(Number(v).toFixed(1)) + " %"; },
      describe: describe,
    });
    canvas.setAttribute("data-points", String(points));
  }

  // Live rows arrive one symbol at a time: draw once per frame at most.
  var pending = false;
  function schedule() {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () { pending = false; redraw(); });
  }

  document.addEventListener("optscan:rows-changed", schedule);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", schedule);
  } else {
    schedule();
  }
})();
