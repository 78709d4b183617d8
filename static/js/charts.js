// optscan's chart helpers over the vendored Chart.js (static/vendor/chartjs): a scatter of
// labelled points grouped by series, and a time series with up to two value axes. Both draw
// again in place when called again on the same canvas. Canvas only: no inline script or style.
(function () {
  "use strict";

  if (!window.Chart) { return; } // the vendored library did not load: pages work without charts

  // Tableau 10: distinct, readable on light and dark backgrounds.
  var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  function color(index) {
    if (index < PALETTE.length) { return PALETTE[index]; }
    // Beyond the palette, hues a golden angle apart stay apart.
    return "hsl(" + Math.round((index * 137.508) % 360) + ", 55%, 52%)";
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // Text and grid colours follow the page's theme (light or dark).
  function theme() {
    window.Chart.defaults.color = cssVar("--muted", "#666");
    window.Chart.defaults.borderColor = cssVar("--border", "rgba(128, 128, 128, 0.25)");
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  }

  // Draw `data` on the canvas: update the chart already there, or make one.
  function draw(canvas, config) {
    var chart = window.Chart.getChart(canvas);
    if (chart && chart.config.type === config.type) {
      chart.data = config.data;
      chart.options = config.options;
      chart.update("none");
      return chart;
    }
    if (chart) { chart.destroy(); }
    theme();
    return new window.Chart(canvas, config);
  }

  function axisTitle(text) { return { display: Boolean(text), text: text || "" }; }

  // series: [{label, points: [{x, y, name}]}]; options: {xTitle, yTitle, xFormat, yFormat,
  // describe(point, series) -> tooltip line}. Returns the chart.
  function scatter(canvas, series, options) {
    options = options || {};
    var format = function (fn, value) { return fn ? fn(value) : String(value); };
    return draw(canvas, {
      type: "scatter",
      data: {
        datasets: series.map(function (s, i) {
          return {
            label: s.label,
            data: s.points,
            backgroundColor: s.color || color(i),
            borderColor: s.color || color(i),
            pointRadius: 4,
            pointHoverRadius: 7,
          };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: { type: "linear", title: axisTitle(options.xTitle),
            ticks: { callback: function (v) { return format(options.xFormat, v); } } },
          y: { type: "linear", title: axisTitle(options.yTitle),
            ticks: { callback: function (v) { return format(options.yFormat, v); } } },
        },
        plugins: {
          legend: { display: series.length > 1 && series.length <= (options.legendMax || 24),
            position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? items[0].raw.name || "" : ""; },
              label: function (item) {
                var s = series[item.datasetIndex];
                if (options.describe) { return options.describe(item.raw, s); }
                return s.label + ": " + format(options.xFormat, item.raw.x) + ", " +
                  format(options.yFormat, item.raw.y);
              },
            },
          },
        },
      },
    });
  }

  var NEW_YORK_DAY = new Intl.DateTimeFormat("en-US",
    { timeZone: "America/New_York", month: "short", day: "numeric" });
  var NEW_YORK_TIME = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York",
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

  // series: [{label, points: [{x: epoch ms, y}], axis: "y" | "y2", kind: "line" | "bar",
  // format(y) -> text}]; options: {yTitle, y2Title}. Times are shown in New York time.
  function timeSeries(canvas, series, options) {
    options = options || {};
    var hasSecond = series.some(function (s) { return s.axis === "y2"; });
    var scales = {
      x: { type: "linear", ticks: { maxTicksLimit: 8,
        callback: function (v) { return NEW_YORK_DAY.format(new Date(v)); } } },
      y: { type: "linear", position: "left", title: axisTitle(options.yTitle) },
    };
    if (hasSecond) {
      scales.y2 = { type: "linear", position: "right", title: axisTitle(options.y2Title),
        grid: { drawOnChartArea: false } };
    }
    return draw(canvas, {
      type: "line",
      data: {
        datasets: series.map(function (s, i) {
          return {
            type: s.kind === "bar" ? "bar" : "line",
            label: s.label,
            data: s.points,
            yAxisID: s.axis === "y2" && hasSecond ? "y2" : "y",
            borderColor: s.color || color(i),
            backgroundColor: s.color || color(i),
            pointRadius: s.points.length > 60 ? 0 : 2,
            borderWidth: 2,
            // On a time axis Chart.js sizes bars by the closest two points, which may be
            // seconds apart: a fixed width keeps every bar visible.
            barThickness: s.kind === "bar" ? (s.barThickness || 4) : undefined,
            spanGaps: false,
          };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: scales,
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length ? NEW_YORK_TIME.format(new Date(items[0].raw.x)) + " ET" : "";
              },
              label: function (item) {
                var s = series[item.datasetIndex];
                return s.label + ": " + (s.format ? s.format(item.raw.y) : item.raw.y);
              },
            },
          },
        },
      },
    });
  }

  // A page may carry its chart data in <script type="application/json" id=...>: data, not
  // code, so the CSP (script-src 'self') lets it be and the browser never runs it.
  function readJson(id) {
    var element = document.getElementById(id);
    if (!element) { return null; }
    try { return JSON.parse(element.textContent); } catch (err) { return null; }
  }

  // The number of points a chart holds (for the page and its tests).
  function pointCount(canvas) {
    var chart = window.Chart.getChart(canvas);
    if (!chart) { return 0; }
    return chart.data.datasets.reduce(function (n, d) { return n + d.data.length; }, 0);
  }

  window.optscanCharts = {
    color: color,
    scatter: scatter,
    timeSeries: timeSeries,
    readJson: readJson,
    pointCount: pointCount,
  };
})();
