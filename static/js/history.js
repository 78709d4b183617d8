// A symbol's history page: spot, 30-day IV and matches over time, from the page's JSON block
// (#history-data), drawn with optscanCharts.timeSeries. No inline script or style.
(function () {
  "use strict";

  function points(data, key) {
    return data.map(function (p) { return { x: p.t, y: p[key] }; });
  }

  function fixed(digits, suffix) {
    return function (v) { return v === null || v === undefined ? "–" : v.toFixed(digits) + suffix; };
  }

  function draw() {
    var box = document.getElementById("history-chart");
    var charts = window.optscanCharts;
    var data = charts ? charts.readJson("history-data") : null;
    if (!box || !data) { return; }
    var series = [
      { label: "Spot", points: points(data, "spot"), format: fixed(2, " USD") },
      { label: "30-day IV %", axis: "y2", points: points(data, "iv30"), format: fixed(1, "%") },
    ];
    if (data.some(function (p) { return p.vendor_iv30 !== null; })) {
      series.push({ label: "Vendor 30-day IV %", axis: "y2", points: points(data, "vendor_iv30"),
        format: fixed(1, "%") });
    }
    series.push({ label: "Matches", kind: "bar", axis: "y2", points: points(data, "matches"),
      format: fixed(0, "") });
    charts.timeSeries(box.querySelector("canvas"), series,
      { yTitle: "spot, USD", y2Title: "IV %, matches" });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
