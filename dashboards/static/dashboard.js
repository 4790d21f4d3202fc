// The study page: draws the Plotly figures the server (or the report) handed over, opens a plan
// when a point is clicked, and, when served live, redraws when new evaluations land.
(function () {
  "use strict";
  var node = document.getElementById("study-data");
  if (!node) { return; }
  var page = JSON.parse(node.textContent);
  var config = { responsive: true, displaylogo: false };
  var version = page.version;

  function draw(id, figure) {
    var target = document.getElementById(id);
    if (target && figure) { return Plotly.react(target, figure.data, figure.layout, config); }
    return Promise.resolve();
  }

  function drawPlanFigures(root) {
    root.querySelectorAll("script.figure").forEach(function (script) {
      var figure = JSON.parse(script.textContent);
      draw(script.dataset.target, figure);
    });
  }

  function showPlan(hash, html) {
    var panel = document.getElementById("plan-panel");
    panel.innerHTML = html;
    panel.querySelectorAll("img[data-shared='full-samples']").forEach(function (img) {
      img.src = page.full_samples;  // the report keeps one copy of the full model's samples
    });
    drawPlanFigures(panel);
    history.replaceState(null, "", "#plan=" + hash);
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function openPlan(hash) {
    if (page.static) {
      var template = document.getElementById("plan-" + hash);
      if (template) {
        showPlan(hash, template.innerHTML);
      } else {
        var panel = document.getElementById("plan-panel");
        panel.innerHTML = "<p class=\"error\"></p>";
        panel.querySelector(".error").textContent = "This report holds no view of plan " + hash.slice(0, 12) +
          ". " + (page.missing_note || "");
      }
      return;
    }
    fetch(page.fragment_url + encodeURIComponent(hash) + "/fragment")
      .then(function (response) {
        return response.text().then(function (text) {
          if (!response.ok) { throw new Error(text); }
          return text;
        });
      })
      .then(function (html) { showPlan(hash, html); })
      .catch(function (err) {
        document.getElementById("plan-panel").innerHTML = "<p class=\"error\"></p>";
        document.querySelector("#plan-panel .error").textContent = "Could not open plan " + hash + ": " + err.message;
      });
  }

  function onPointClick(event) {
    var point = event.points && event.points[0];
    if (point && point.customdata) { openPlan(point.customdata[0]); }
  }

  function bindLinks(root) {
    root.querySelectorAll("a.plan-link").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        openPlan(link.dataset.plan);
      });
    });
  }

  // A large study's cloud of plans is thinned (the trace names say "zoom for more"): a zoom asks
  // the server for the plans inside the window, thinned afresh; a reset draws the page's figure.
  var frontFigure = page.front;
  var zoomed = null;

  function thinned(data) {
    return data.some(function (trace) { return /zoom for more/.test(trace.name || ""); });
  }

  function onFrontZoom(event) {
    var plot = document.getElementById("front-plot");
    if (event["xaxis.autorange"] || event["yaxis.autorange"]) {
      if (zoomed !== null) { zoomed = null; Plotly.react(plot, frontFigure.data, plot.layout, config); }
      return;
    }
    var x = plot.layout.xaxis.range, y = plot.layout.yaxis.range;
    if (!x || !y || (zoomed === null && !thinned(frontFigure.data))) { return; }
    if (plot.layout.yaxis.type === "log") { y = [Math.pow(10, y[0]), Math.pow(10, y[1])]; }
    var key = "macs=" + x[0] + "," + x[1] + "&fid=" + y[0] + "," + y[1];
    if (key === zoomed) { return; }
    zoomed = key;
    fetch(page.figures_url + "/front?" + key)
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (update) {
        if (update && update.front && zoomed === key) { Plotly.react(plot, update.front.data, plot.layout, config); }
      })
      .catch(function () { /* keep what is drawn */ });
  }

  function refresh() {
    fetch(page.figures_url + "?since=" + encodeURIComponent(version), { cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (update) {
        if (!update || !update.front || update.version === version) { return; }
        version = update.version;
        frontFigure = update.front;
        zoomed = null;
        draw("front-plot", update.front);
        draw("hv-plot", update.hypervolume);
        var summary = document.getElementById("summary");
        summary.innerHTML = update.summary_html;
        bindLinks(summary);
      })
      .catch(function () { /* the server is away: try again at the next tick */ })
      .then(function () { setTimeout(refresh, page.refresh_ms); });
  }

  if (page.front) {
    draw("front-plot", page.front).then(function (plot) {
      plot.on("plotly_click", onPointClick);
      if (!page.static) { plot.on("plotly_relayout", onFrontZoom); }
    });
    draw("hv-plot", page.hypervolume).then(function (plot) { plot.on("plotly_click", onPointClick); });
    bindLinks(document);
    var wanted = /^#plan=([0-9a-f]+)$/.exec(location.hash);
    if (wanted) { openPlan(wanted[1]); }
    if (!page.static && page.refresh_ms > 0) { setTimeout(refresh, page.refresh_ms); }
  } else {
    drawPlanFigures(document);
  }
}());
