/* bilevel_bench leaderboard plots: click a legend entry to draw or hide a curve, hover a plot
   to read the values under the pointer, switch the clock of a view, and ?highlight=NAME to draw
   (and mark in the tables) a solver of your choice on every page. Vendored, no dependencies,
   works from file://; without JavaScript the static SVG shows the curves drawn by default. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var params = new URLSearchParams(window.location.search);
  var highlight = params.getAll("highlight").filter(function (h) { return h; });

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  function setShown(svg, i, on) {
    each(svg.querySelectorAll('[data-i="' + i + '"]'), function (el) {
      el.classList.toggle("off", !on);
      if (el.classList.contains("lg")) { el.setAttribute("aria-pressed", on ? "true" : "false"); }
    });
  }

  function fromPixels(spec, p) {
    var v = spec[2] + (p - spec[0]) / (spec[1] - spec[0]) * (spec[3] - spec[2]);
    return spec[4] ? Math.pow(10, v) : v;
  }

  function valueAt(points, x, step) {
    var best = null, dist = Infinity;
    for (var k = 0; k < points.length; k++) {
      var px = points[k][0], py = points[k][1];
      if (px === null || py === null) { continue; }
      if (step) { if (px <= x) { best = py; } else { break; } }
      else {
        var d = Math.abs(Math.log(Math.abs(px) + 1e-300) - Math.log(Math.abs(x) + 1e-300));
        if (d < dist) { dist = d; best = py; }
      }
    }
    return best;
  }

  function fmt(v) {
    if (v === null || v === undefined) { return "–"; }
    var a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(2) : String(+v.toPrecision(3));
  }

  function setupPlot(svg) {
    var ax = JSON.parse(svg.getAttribute("data-ax"));
    var xlabel = svg.getAttribute("data-xlabel") || "x";
    var series = svg.querySelectorAll("g.s");
    var cache = {};
    each(svg.querySelectorAll("g.lg"), function (lg) {
      function toggle() {
        var i = lg.getAttribute("data-i");
        setShown(svg, i, lg.classList.contains("off"));
      }
      lg.addEventListener("click", toggle);
      lg.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
      });
    });
    each(series, function (g) {
      if (highlight.indexOf(g.getAttribute("data-key")) >= 0) {
        setShown(svg, g.getAttribute("data-i"), true);
        svg.querySelector('g.lg[data-i="' + g.getAttribute("data-i") + '"]').classList.add("hl");
      }
    });
    var tip = document.createElement("div");
    tip.className = "plottip";
    tip.hidden = true;
    document.body.appendChild(tip);
    var guide = document.createElementNS(SVGNS, "line");
    guide.setAttribute("class", "guide");
    guide.setAttribute("visibility", "hidden");
    svg.appendChild(guide);
    var frame = svg.querySelector("rect.frame");
    svg.addEventListener("mousemove", function (e) {
      var ctm = svg.getScreenCTM();
      if (!ctm || !frame) { return; }
      var pt = svg.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      var p = pt.matrixTransform(ctm.inverse());
      var x0 = +frame.getAttribute("x"), x1 = x0 + (+frame.getAttribute("width"));
      var y0 = +frame.getAttribute("y"), y1 = y0 + (+frame.getAttribute("height"));
      if (p.x < x0 || p.x > x1 || p.y < y0 || p.y > y1) {
        tip.hidden = true; guide.setAttribute("visibility", "hidden"); return;
      }
      var x = fromPixels(ax, p.x);
      var lines = [];
      each(series, function (g) {
        if (g.classList.contains("off")) { return; }
        var i = g.getAttribute("data-i");
        if (!cache[i]) { cache[i] = JSON.parse(g.getAttribute("data-xy")); }
        var v = valueAt(cache[i], x, g.getAttribute("data-step") === "1");
        if (v !== null) { lines.push([g.getAttribute("data-label"), v]); }
      });
      lines.sort(function (a, b) { return b[1] - a[1]; });
      tip.textContent = "";
      var head = document.createElement("b");
      head.textContent = xlabel + ": " + fmt(x);
      tip.appendChild(head);
      lines.slice(0, 12).forEach(function (l) {
        var row = document.createElement("div");
        row.textContent = l[0] + ": " + fmt(l[1]);
        tip.appendChild(row);
      });
      tip.hidden = false;
      tip.style.left = (e.pageX + 14) + "px";
      tip.style.top = (e.pageY + 10) + "px";
      guide.setAttribute("x1", p.x); guide.setAttribute("x2", p.x);
      guide.setAttribute("y1", y0); guide.setAttribute("y2", y1);
      guide.setAttribute("visibility", "visible");
    });
    svg.addEventListener("mouseleave", function () {
      tip.hidden = true; guide.setAttribute("visibility", "hidden");
    });
  }

  function setupClocks(box) {
    var sections = box.querySelectorAll("section.clock");
    if (sections.length < 2) { return; }
    var bar = document.createElement("div");
    bar.className = "clockbar";
    bar.setAttribute("role", "tablist");
    var label = document.createElement("span");
    label.textContent = "Clock: ";
    bar.appendChild(label);
    each(sections, function (sec, k) {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("role", "tab");
      b.textContent = sec.getAttribute("data-clock");
      b.addEventListener("click", function () {
        each(sections, function (s, j) { s.hidden = j !== k; });
        each(bar.querySelectorAll("button"), function (o, j) {
          o.setAttribute("aria-selected", j === k ? "true" : "false");
        });
      });
      bar.appendChild(b);
    });
    box.insertBefore(bar, box.firstChild);
    bar.querySelector("button").click();
  }

  // a link to the reason of a failed run (#why-...) opens its <details>, in every browser
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();

  each(document.querySelectorAll("svg.plot"), setupPlot);
  each(document.querySelectorAll(".clocks"), setupClocks);
  if (highlight.length) {
    each(document.querySelectorAll("td a"), function (a) {
      if (highlight.indexOf(a.textContent) >= 0) { a.closest("tr").classList.add("hl"); }
    });
    var query = highlight.map(function (h) { return "highlight=" + encodeURIComponent(h); })
      .join("&");
    each(document.querySelectorAll("a[href$='.html'], a[href*='.html#']"), function (a) {
      var href = a.getAttribute("href");
      if (href.indexOf("//") >= 0 || href.indexOf("?") >= 0) { return; }
      var cut = href.indexOf("#");
      a.setAttribute("href", cut < 0 ? href + "?" + query
                                     : href.slice(0, cut) + "?" + query + href.slice(cut));
    });
  }
})();
