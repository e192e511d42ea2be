// The figures screen: draw each panel's chart with ECharts (vendored, see VENDORED.md) from
// the figures the server put in the page, and read the page again every few seconds.
(function () {
  "use strict";
  var RED = "#e5534b", GREEN = "#3fb950", BLUE = "#58a6ff", AMBER = "#d29922", TEXT = "#e8eef7", GRID = "#26384f";
  var charts = [];

  function axis(labels) {
    return {
      type: "category", data: labels,
      axisLabel: { color: TEXT, interval: 0, rotate: labels.length > 6 ? 30 : 0 },
      axisLine: { lineStyle: { color: GRID } }
    };
  }
  function values(max) {
    // room above the tallest bar for its label (and for a line drawn at the top)
    var roomy = function (extent) { return Math.max(1, Math.ceil(extent.max * 1.25)); };
    return { type: "value", max: max || roomy, minInterval: 1, axisLabel: { color: TEXT },
             splitLine: { lineStyle: { color: GRID } } };
  }
  function base(labels, max) {
    return {
      animation: false, backgroundColor: "transparent", textStyle: { color: TEXT },
      grid: { left: 44, right: 12, top: 28, bottom: labels.length > 6 ? 64 : 24 },
      tooltip: { trigger: "axis" }, legend: { textStyle: { color: TEXT }, top: 0 },
      xAxis: axis(labels), yAxis: values(max)
    };
  }
  function draw(id, option) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) { return; }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(option);
    charts.push(chart);
  }

  function render(f, names) {
    charts.forEach(function (c) { c.dispose(); });
    charts = [];
    if (f.stock && f.stock.labels.length) {
      var s = f.stock, o = base(s.labels);
      o.series = [
        { name: names.available, type: "bar", itemStyle: { color: GREEN }, data: s.available.map(function (v, i) {
            return { value: v, itemStyle: { color: s.low[i] ? RED : GREEN } };
          }) },
        { name: names.threshold, type: "line", data: s.threshold, symbol: "rect", symbolSize: [36, 4],
          lineStyle: { opacity: 0 }, itemStyle: { color: AMBER } }
      ];
      draw("chart-stock", o);
    }
    if (f.checkin && f.checkin.labels.length) {
      var c = f.checkin, oc = base(c.labels, 100);
      oc.series = [{ name: names.rate, type: "bar", data: c.rates, itemStyle: { color: BLUE },
                     label: { show: true, position: "top", color: TEXT, formatter: "{c}%" } }];
      draw("chart-checkin", oc);
    }
    if (f.sampling && f.sampling.labels.length) {
      var p = f.sampling, op = base(p.labels, 100);
      op.series = [{ name: names.rate, type: "bar", itemStyle: { color: GREEN }, data: p.rates.map(function (v, i) {
          return { value: v, itemStyle: { color: p.low[i] ? RED : GREEN } };
        }), label: { show: true, position: "top", color: TEXT, formatter: "{c}%" },
        markLine: { symbol: "none", data: [{ yAxis: p.line, name: names.line }],
                    lineStyle: { color: AMBER, type: "dashed" },
                    label: { color: TEXT, position: "insideEndTop", formatter: names.line + " {c}%" } } }];
      draw("chart-sampling", op);
    }
    if (f.demand && f.demand.labels.length) {
      var d = f.demand, od = base(d.labels);
      od.series = [{ name: names.requests, type: "bar", data: d.counts, itemStyle: { color: AMBER },
                     label: { show: true, position: "top", color: TEXT } }];
      draw("chart-demand", od);
    }
    if (f.overdue && f.overdue.labels.length) {
      var v = f.overdue, ov = base(v.labels);
      ov.series = [{ name: names.overdue, type: "bar", data: v.counts, itemStyle: { color: RED },
                     label: { show: true, position: "top", color: TEXT } }];
      draw("chart-overdue", ov);
    }
  }

  function start() {
    var data = document.getElementById("screen-data");
    if (!data) { return; }
    var f = JSON.parse(data.textContent);
    render(f, f.names);
    document.getElementById("screen").dataset.drawn = String(charts.length);
  }

  function reload() {
    fetch(location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("screen");
        var here = document.getElementById("screen");
        if (fresh && here) {
          charts.forEach(function (c) { c.dispose(); });
          charts = [];
          here.replaceWith(fresh);
          start();
        }
      })
      .catch(function () { /* the network blinked: the figures stay until the next turn */ })
      .then(schedule);
  }
  function schedule() {
    var box = document.getElementById("screen");
    var every = Math.max(5, parseFloat(box && box.dataset.every) || 30) * 1000;
    setTimeout(reload, every);
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  start();
  schedule();
})();
