/* llmct scan report: vanilla JS, charts drawn as inline SVG, no dependencies, no network.
 * All user-provided text is inserted with textContent (never innerHTML). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var D = JSON.parse(document.getElementById("scan-data").textContent);
  var T = D.theme;
  var PAL = T.palette;
  var METRIC_NAMES = D.labels;
  var METRICS = ["cosine", "cosine_centered", "mae", "jaccard"];
  var uid = 0;

  /* ------------------------------------------------------------------ helpers */
  function el(tag, props) {
    var n = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      var v = props[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") n.textContent = v;
      else if (k === "class") n.className = v;
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) add(n, arguments[i]);
    return n;
  }
  function add(n, kid) {
    if (kid === null || kid === undefined || kid === false) return;
    if (Array.isArray(kid)) kid.forEach(function (k) { add(n, k); });
    else n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  function sv(tag, attrs, parent) {
    var n = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) n.setAttribute(k, attrs[k]);
    });
    if (parent) parent.appendChild(n);
    return n;
  }
  function stext(parent, x, y, str, attrs) {
    var t = sv("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = str;
    return t;
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v, digits) {
    if (!isNum(v)) return "–";
    if (digits === undefined) digits = Math.abs(v) >= 100 ? 1 : 3;
    var out = v.toFixed(digits);
    return +out === 0 ? (0).toFixed(digits) : out;
  }
  function extent(arrays) {
    var lo = Infinity, hi = -Infinity;
    (function walk(a) {
      if (Array.isArray(a)) a.forEach(walk);
      else if (isNum(a)) { if (a < lo) lo = a; if (a > hi) hi = a; }
    })(arrays);
    return lo === Infinity ? [0, 1] : [lo, hi];
  }
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { var pad = Math.abs(lo) * 0.05 || 0.5; lo -= pad; hi += pad; }
    var raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    var step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag, out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return { lo: lo, hi: hi, ticks: out, step: step };
  }
  function hexRgb(h) { return [1, 3, 5].map(function (i) { return parseInt(h.slice(i, i + 2), 16); }); }
  function ramp(anchors, t) {
    t = Math.max(0, Math.min(1, isNum(t) ? t : 0));
    var seg = t * (anchors.length - 1), i = Math.min(Math.floor(seg), anchors.length - 2), f = seg - i;
    var a = hexRgb(anchors[i]), b = hexRgb(anchors[i + 1]);
    return "rgb(" + a.map(function (x, k) { return Math.round(x + (b[k] - x) * f); }).join(",") + ")";
  }
  function seriesStyle(i) {
    var dashes = [null, "6 4", "2 3", "8 3 2 3"];
    return { color: PAL[i % PAL.length], dash: dashes[Math.floor(i / PAL.length) % dashes.length] };
  }
  function select(label, options, value, onchange) {
    var s = el("select", { onchange: function () { onchange(s.value); } });
    options.forEach(function (o) {
      var opt = el("option", { value: String(o.value), text: o.label });
      if (String(o.value) === String(value)) opt.selected = true;
      s.append(opt);
    });
    return el("label", null, label, s);
  }
  function segmented(options, value, onchange) {
    var box = el("span", { class: "seg" });
    options.forEach(function (o) {
      var b = el("button", { type: "button", class: o.value === value ? "on" : null, text: o.label, onclick: function () {
        Array.prototype.forEach.call(box.children, function (c) { c.className = ""; });
        b.className = "on";
        onchange(o.value);
      } });
      box.append(b);
    });
    return box;
  }
  function show(v) { return isNum(v) ? (Number.isInteger(v) ? String(v) : fmt(v)) : v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v); }
  function empty(host, msg) { host.replaceChildren(el("div", { class: "empty", text: msg })); }
  function snapLabel(s) {
    return "#" + s.i + " · " + s.role + (s.emotion ? " · " + s.emotion : "");
  }
  function section(id, render) {
    var sec = document.getElementById(id);
    var body = sec.querySelector(".body") || sec;
    try { render(sec, body, sec.querySelector(".controls")); }
    catch (e) {
      __logError("section " + id + ": " + (e && e.stack ? e.stack : e));
      empty(body, "This section failed to render (see the error box at the top).");
    }
  }
  function missingNote(files) { return "Not available: " + files.join(", ") + " missing from this run."; }

  /* ------------------------------------------------------------------ tooltip */
  var tip = document.getElementById("tooltip");
  function showTip(evt, title, rows) {
    tip.replaceChildren(el("div", { class: "tt-title", text: title }));
    rows.forEach(function (r) {
      var sw = el("span", { class: "sw" });
      if (r.color) sw.style.background = r.color;
      tip.append(el("div", { class: "tt-row" }, sw, el("span", { text: r.k }), el("span", { class: "tt-v", text: r.v })));
    });
    tip.style.display = "block";
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var x = evt.clientX + 14, y = evt.clientY + 14;
    if (x + w > window.innerWidth - 8) x = evt.clientX - w - 14;
    if (y + h > window.innerHeight - 8) y = evt.clientY - h - 14;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  /* ------------------------------------------------------------------ charts */
  /* Line chart. o: {name, title, xs, series:[{name,values,color,dash}], xLabel, yLabel,
   * xTick(i)->[line1,line2], digits, hlines:[{y,label}], width, height, points} */
  function lineChart(host, o) {
    var W = o.width || 580, H = o.height || 270, m = { l: 54, r: 16, t: 28, b: o.xTick ? 50 : 40 };
    var pw = W - m.l - m.r, ph = H - m.t - m.b;
    var svg = sv("svg", { class: "chart", "data-chart": o.name, viewBox: "0 0 " + W + " " + H, role: "img" });
    host.append(svg);
    stext(svg, 0, 15, o.title, { class: "title" });
    var ex = extent(o.series.map(function (s) { return s.values; }).concat((o.hlines || []).map(function (h) { return h.y; })));
    var pad = (ex[1] - ex[0]) * 0.06 || 0.05;
    var yt = ticks(ex[0] - pad, ex[1] + pad, 5);
    var n = o.xs.length;
    var X = function (i) { return m.l + (n > 1 ? (i / (n - 1)) * pw : pw / 2); };
    var Y = function (v) { return m.t + ph - ((v - yt.lo) / (yt.hi - yt.lo)) * ph; };
    var g = sv("g", { class: "grid" }, svg), ax = sv("g", { class: "axis" }, svg);
    yt.ticks.forEach(function (v) {
      if (v < yt.lo || v > yt.hi) return;
      sv("line", { x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v) }, g);
      stext(ax, m.l - 6, Y(v) + 4, +v.toFixed(6) + "", { "text-anchor": "end" });
    });
    var every = Math.max(1, Math.ceil(n / (o.xTick ? 12 : 18)));
    o.xs.forEach(function (x, i) {
      if (i !== n - 1 && (i % every || n - 1 - i < every * 0.6)) return;
      sv("line", { x1: X(i), x2: X(i), y1: m.t + ph, y2: m.t + ph + 4 }, ax);
      var lines = o.xTick ? o.xTick(i) : [String(x)];
      var t = stext(ax, X(i), m.t + ph + 16, lines[0], { "text-anchor": "middle" });
      if (lines[1]) { var ts = sv("tspan", { x: X(i), dy: 13 }, t); ts.textContent = lines[1]; }
    });
    sv("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }, ax);
    sv("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }, ax);
    if (o.xLabel) stext(svg, m.l + pw / 2, H - 4, o.xLabel, { class: "lbl", "text-anchor": "middle" });
    if (o.yLabel) stext(svg, 13, m.t + ph / 2, o.yLabel, { class: "lbl", "text-anchor": "middle", transform: "rotate(-90 13 " + (m.t + ph / 2) + ")" });
    (o.hlines || []).forEach(function (h) {
      sv("line", { x1: m.l, x2: m.l + pw, y1: Y(h.y), y2: Y(h.y), stroke: "#8893A2", "stroke-dasharray": "2 4" }, svg);
      stext(svg, m.l + pw - 2, Y(h.y) - 4, h.label, { class: "lbl", "text-anchor": "end" });
    });
    o.series.forEach(function (s, si) {
      var d = "", pen = false;
      s.values.forEach(function (v, i) {
        if (!isNum(v)) { pen = false; return; }
        d += (pen ? "L" : "M") + X(i).toFixed(1) + "," + Y(v).toFixed(1);
        pen = true;
      });
      if (d) sv("path", { class: "series", "data-s": si, d: d, stroke: s.color, "stroke-dasharray": s.dash }, svg);
      if (o.points) s.values.forEach(function (v, i) {
        if (isNum(v)) sv("circle", { class: "pt", "data-s": si, cx: X(i), cy: Y(v), r: 3, fill: s.color }, svg);
      });
    });
    var rule = sv("line", { class: "rule", y1: m.t, y2: m.t + ph, visibility: "hidden" }, svg);
    var overlay = sv("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent" }, svg);
    overlay.addEventListener("mousemove", function (evt) {
      var box = svg.getBoundingClientRect(), px = (evt.clientX - box.left) * (W / box.width);
      var i = Math.max(0, Math.min(n - 1, Math.round(((px - m.l) / pw) * (n - 1))));
      rule.setAttribute("x1", X(i)); rule.setAttribute("x2", X(i)); rule.setAttribute("visibility", "visible");
      var rows = o.series.map(function (s) { return { k: s.name, v: fmt(s.values[i], o.digits), color: s.color, raw: s.values[i] }; })
        .sort(function (a, b) { return (isNum(b.raw) ? b.raw : -Infinity) - (isNum(a.raw) ? a.raw : -Infinity); });
      showTip(evt, o.tipTitle ? o.tipTitle(i) : (o.xLabel || "x") + " " + o.xs[i], rows);
    });
    overlay.addEventListener("mouseleave", function () { rule.setAttribute("visibility", "hidden"); hideTip(); });
    return svg;
  }

  /* Legend for a set of series; hovering an entry highlights it in every chart inside `scope`. */
  function legend(host, series, scope) {
    var box = el("div", { class: "legend" });
    series.forEach(function (s, si) {
      var sw = sv("svg", { viewBox: "0 0 26 10" });
      sv("line", { x1: 1, x2: 25, y1: 5, y2: 5, stroke: s.color, "stroke-width": 2.4, "stroke-dasharray": s.dash }, sw);
      var item = el("span", { class: "item" }, sw, el("span", { text: s.name }));
      item.addEventListener("mouseenter", function () {
        scope.classList.add("dim");
        scope.querySelectorAll('[data-s="' + si + '"]').forEach(function (p) { p.classList.add("hl"); });
      });
      item.addEventListener("mouseleave", function () {
        scope.classList.remove("dim");
        scope.querySelectorAll(".hl").forEach(function (p) { p.classList.remove("hl"); });
      });
      box.append(item);
    });
    host.append(box);
  }

  /* Heatmap. o: {name, title, rows, cols, values[r][c], diverging, digits, highlightRow,
   * markMax, rowTitle, colTitle, cellH} */
  function heatmap(host, o) {
    var labelW = 12 + 7 * Math.max.apply(null, o.rows.map(function (r) { return String(r).length; }).concat([4]));
    var W = o.width || 1180, m = { l: labelW, r: 86, t: 30, b: 36 };
    var cw = (W - m.l - m.r) / o.cols.length, ch = o.cellH || 24;
    var H = m.t + ch * o.rows.length + m.b;
    var svg = sv("svg", { class: "chart", "data-chart": o.name, viewBox: "0 0 " + W + " " + H, role: "img" });
    host.append(svg);
    stext(svg, 0, 15, o.title, { class: "title" });
    var ex = extent(o.values), lo = ex[0], hi = ex[1];
    if (o.diverging) { var a = Math.max(Math.abs(lo), Math.abs(hi)) || 1; lo = -a; hi = a; }
    var anchors = o.diverging ? T.diverging : T.sequential;
    var color = function (v) { return isNum(v) ? ramp(anchors, hi > lo ? (v - lo) / (hi - lo) : 0.5) : "#F0F1F3"; };
    var best = null;
    if (o.markMax) o.values.forEach(function (row, r) { row.forEach(function (v, c) {
      if (isNum(v) && (!best || v > best.v)) best = { r: r, c: c, v: v };
    }); });
    var ax = sv("g", { class: "axis" }, svg);
    o.rows.forEach(function (name, r) {
      var t = stext(ax, m.l - 8, m.t + r * ch + ch / 2 + 4, name, { "text-anchor": "end" });
      if (r === o.highlightRow) { t.setAttribute("class", "hl-row"); t.textContent = "★ " + name; }
      o.cols.forEach(function (col, c) {
        var v = o.values[r][c];
        var cell = sv("rect", { class: "cell", x: m.l + c * cw, y: m.t + r * ch, width: Math.max(cw - 1, 0.5), height: ch - 1, fill: color(v), rx: 1.5 }, svg);
        cell.addEventListener("mousemove", function (evt) {
          showTip(evt, (o.rowTitle || "") + " " + name + " · " + (o.colTitle || "") + " " + col, [{ k: o.metricName || "value", v: fmt(v, o.digits), color: color(v) }]);
        });
        cell.addEventListener("mouseleave", hideTip);
      });
    });
    if (best) sv("rect", { x: m.l + best.c * cw - 0.5, y: m.t + best.r * ch - 0.5, width: cw, height: ch, fill: "none", stroke: "#111827", "stroke-width": 2 }, svg);
    var every = Math.max(1, Math.ceil(o.cols.length / 40));
    o.cols.forEach(function (col, c) {
      if (c % every) return;
      stext(ax, m.l + c * cw + cw / 2, m.t + o.rows.length * ch + 14, String(col), { "text-anchor": "middle" });
    });
    if (o.colTitle) stext(svg, m.l + (W - m.l - m.r) / 2, H - 4, o.colTitle, { class: "lbl", "text-anchor": "middle" });
    // colour bar
    var id = "grad" + (++uid), defs = sv("defs", null, svg);
    var grad = sv("linearGradient", { id: id, x1: 0, y1: 1, x2: 0, y2: 0 }, defs);
    anchors.forEach(function (c, i) { sv("stop", { offset: i / (anchors.length - 1), "stop-color": c }, grad); });
    var bx = W - m.r + 16, by = m.t, bh = ch * o.rows.length;
    sv("rect", { x: bx, y: by, width: 12, height: bh, fill: "url(#" + id + ")", stroke: "#C9D0DA" }, svg);
    stext(ax, bx + 17, by + 9, fmt(hi, o.digits));
    stext(ax, bx + 17, by + bh, fmt(lo, o.digits));
    return svg;
  }

  /* ------------------------------------------------------------------ data access */
  var G = D.grid;
  function slice(metric, source, snapIdx) { return G && G[metric] && G[metric][source] ? G[metric][source][snapIdx] : null; }
  function metricsAvail() { return G ? METRICS.filter(function (k) { return G[k]; }) : []; }
  var snapIndex = {};
  D.snapshots.forEach(function (s, k) { snapIndex[s.i] = k; });
  var layerOpts = D.layers.map(function (l) { return { value: l, label: "layer " + l }; });
  var sourceOpts = D.sources.map(function (s) { return { value: s, label: s }; });
  var refSeries = D.refs.map(function (r, i) { return Object.assign({ name: r }, seriesStyle(i)); });

  /* ------------------------------------------------------------------ theme */
  Object.keys(T.named).forEach(function (k) { document.documentElement.style.setProperty("--" + k, T.named[k]); });
  document.documentElement.style.setProperty("--font", T.font);
  document.documentElement.style.setProperty("--mono", T.mono);

  /* ------------------------------------------------------------------ header */
  (function header() {
    var run = D.run, sc = run.scenario || {};
    document.getElementById("title").textContent = (sc.name || "Scan report");
    var prov = document.getElementById("provenance");
    var kv = function (k, v) { return el("div", { class: "kv" }, el("div", { class: "k", text: k }), el("div", { class: "v", text: v === "" ? "–" : show(v) })); };
    var nLayers = run.n_layers ? D.layers.length + " of " + run.n_layers : D.layers.length;
    prov.append(el("div", { class: "grid" },
      kv("Model", run.model || sc.model), kv("Fingerprint", run.model_fingerprint),
      kv("Mode", run.mode), kv("Position", run.position), kv("Layers scanned", nLayers),
      kv("d_model", run.d_model), kv("Sources", D.sources.join(", ")),
      kv("References", D.refs.length), kv("Messages", D.messages.length || D.snapshots.length),
      kv("Tokens processed", run.tokens_processed), kv("Created", run.created)));
    var notes = el("div", null, el("h4", { text: "Notes" }));
    var ul = el("ul");
    (run.notes || []).forEach(function (n) { ul.append(el("li", { text: show(n) })); });
    if (!(run.notes || []).length) ul.append(el("li", { text: "none" }));
    notes.append(ul);
    if (D.figures.length) notes.append(el("h4", { text: "Static figures (figures/)", style: "margin-top:10px" }), el("div", { text: D.figures.join(", ") }));
    var table = function (title, obj, unit) {
      var t = el("table");
      if (obj !== null && typeof obj !== "object") obj = { value: obj };
      Object.keys(obj || {}).forEach(function (k) {
        var v = obj[k];
        t.append(el("tr", null, el("td", { text: k }), el("td", { class: "num", text: isNum(v) ? fmt(v, 2) + (unit || "") : show(v) })));
      });
      if (!Object.keys(obj || {}).length) t.append(el("tr", null, el("td", { text: "–" })));
      return el("div", null, el("h4", { text: title }), t);
    };
    prov.append(el("div", { class: "extra" }, notes, table("Versions", run.versions), table("Timings", run.timings, " s")));
    var banner = document.getElementById("banner");
    if (D.missing.length) banner.append(el("div", { class: "banner warn" }, el("b", { text: "Partial run. " }),
      "Missing: " + D.missing.join(", ") + ". Sections that need these files say so below."));
    D.problems.forEach(function (p) { banner.append(el("div", { class: "banner bad", text: p })); });
  })();

  /* ------------------------------------------------------------------ findings */
  section("findings", function (sec, body) {
    if (!D.findings) return empty(body, missingNote(["findings.json"]));
    if (!D.findings.length) return empty(body, "findings.json is empty.");
    var counts = {};
    D.findings.forEach(function (f) { counts[f.verdict] = (counts[f.verdict] || 0) + 1; });
    var badge = function (v) { var b = el("span", { class: "badge", text: v || "n/a" }); b.style.background = T.verdict[v] || T.verdict["n/a"]; return b; };
    var sum = el("div", { class: "summary" });
    Object.keys(T.verdict).forEach(function (v) {
      if (!counts[v]) return;
      var d = el("span", { class: "dot" }); d.style.background = T.verdict[v];
      sum.append(el("span", { class: "pill" }, d, counts[v] + " " + v));
    });
    var t = el("table", { class: "data" }, el("thead", null, el("tr", null,
      ["ID", "Finding", "Original claim", "Measured", "Verdict", "Detail"].map(function (h) { return el("th", { text: h }); }))));
    var tb = el("tbody");
    D.findings.forEach(function (f) {
      var ci = isNum(f.ci_low) && isNum(f.ci_high) ? el("div", { class: "ci", text: "95% CI [" + fmt(f.ci_low) + ", " + fmt(f.ci_high) + "]" + (f.ci_unit ? " over " + f.ci_unit + (isNum(f.n_units) ? ", n = " + f.n_units : "") : "") }) : null;
      tb.append(el("tr", null, el("td", { class: "mono", text: f.id }), el("td", null, el("b", { text: f.title })),
        el("td", { text: f.seed_claim }), el("td", { class: "num" }, show(f.value) + (f.unit ? " " + f.unit : ""), ci),
        el("td", null, badge(f.verdict)), el("td", { text: f.detail })));
    });
    t.append(tb);
    body.append(sum, el("div", { class: "scroll" }, t));
  });

  /* ------------------------------------------------------------------ timeline */
  section("timeline", function (sec, body, controls) {
    var msgs = D.messages.length ? D.messages : D.snapshots.map(function (s) { return { index: s.i, role: s.role, emotion: s.emotion, content: "(message text not available: run.json missing)" }; });
    if (!msgs.length) return empty(body, missingNote(["run.json", "metrics.csv"]));
    var st = { source: D.focus.source, layer: D.focus.layer, metric: G && G.cosine_centered ? "cosine_centered" : "cosine" };
    if (G) {
      controls.append(select("Source", sourceOpts, st.source, function (v) { st.source = v; draw(); }),
        select("Layer", layerOpts, st.layer, function (v) { st.layer = +v; draw(); }),
        segmented([{ value: "cosine", label: "raw cosine" }, { value: "cosine_centered", label: "centred" }], st.metric, function (v) { st.metric = v; draw(); }),
        el("span", { class: "hint", text: "Default layer: " + D.focus.reason + "." }));
    } else { controls.append(el("span", { class: "hint", text: missingNote(["metrics.csv"]) })); }
    function draw() {
      body.replaceChildren();
      var li = D.layers.indexOf(st.layer);
      var all = D.snapshots.map(function (s, k) { var sl = slice(st.metric, st.source, k); return sl ? sl[li] : null; });
      var ex = extent(all), lo = Math.min(ex[0], 0), span = ex[1] - lo || 1;
      msgs.forEach(function (msg) {
        var role = msg.role || "?";
        var who = el("div", { class: "who" }, el("span", { class: "role " + role, text: role }), " #" + msg.index,
          msg.emotion ? el("div", null, el("span", { class: "tag", text: msg.emotion })) : null,
          el("div", { class: "matchinfo", text: [msg.n_tokens ? msg.n_tokens + " tokens" : "", msg.generated ? "generated" : ""].filter(Boolean).join(" · ") }));
        var top = el("div", { class: "top3" });
        var k = snapIndex[msg.index], vals = k === undefined ? null : all[k];
        if (!vals) top.append(el("div", { class: "hint", text: G ? "no snapshot" : "" }));
        else {
          var match = D.snapshots[k].match;
          D.refs.map(function (r, ri) { return { r: r, ri: ri, v: vals[ri] }; })
            .filter(function (x) { return isNum(x.v); })
            .sort(function (a, b) { return b.v - a.v; }).slice(0, 3)
            .forEach(function (x, rank) {
              var bar = el("div", { class: "bar" }); bar.style.width = (100 * (x.v - lo) / span).toFixed(1) + "%";
              top.append(el("div", { class: "row" + (rank ? "" : " first") }, el("span", { class: "star", text: x.ri === match ? "★" : "" }),
                el("span", { text: x.r }), el("div", null, bar), el("span", { class: "val", text: fmt(x.v) })));
            });
          if (match >= 0 && isNum(vals[match])) {
            var rankOf = vals.filter(function (v) { return isNum(v) && v > vals[match]; }).length + 1;
            top.append(el("div", { class: "matchinfo", text: "tagged " + D.refs[match] + ": rank " + rankOf + " of " + D.refs.length + " (" + fmt(vals[match]) + ")" }));
          }
        }
        body.append(el("div", { class: "turn " + role }, who, el("div", { class: "text", text: msg.content }), top));
      });
    }
    draw();
  });

  /* ------------------------------------------------------------------ explorer */
  section("explorer", function (sec, body, controls) {
    if (!G) { controls.remove(); return empty(body, missingNote(["metrics.csv"])); }
    var mets = metricsAvail();
    var defaultSnap = D.snapshots.length - 1;
    D.snapshots.forEach(function (s, k) { if (s.role === "user") defaultSnap = k; });
    var st = { source: D.focus.source, snap: defaultSnap, metric: mets.indexOf("cosine_centered") >= 0 ? "cosine_centered" : mets[0] };
    var snapOpts = D.snapshots.map(function (s, k) { return { value: k, label: snapLabel(s) }; });
    var snapSel = select("Snapshot", snapOpts, st.snap, function (v) { st.snap = +v; draw(); });
    var step = function (d) { st.snap = Math.max(0, Math.min(D.snapshots.length - 1, st.snap + d)); snapSel.querySelector("select").value = String(st.snap); draw(); };
    controls.append(select("Source", sourceOpts, st.source, function (v) { st.source = v; draw(); }), snapSel,
      el("span", null, el("button", { class: "btn", type: "button", text: "◀", title: "previous snapshot", onclick: function () { step(-1); } }), " ",
        el("button", { class: "btn", type: "button", text: "▶", title: "next snapshot", onclick: function () { step(1); } })),
      select("Heatmap metric", mets.map(function (k) { return { value: k, label: METRIC_NAMES[k] }; }), st.metric, function (v) { st.metric = v; draw(); }));
    function draw() {
      body.replaceChildren();
      var s = D.snapshots[st.snap], hm = slice(st.metric, st.source, st.snap);
      heatmap(body, {
        name: "heatmap", title: METRIC_NAMES[st.metric] + " · " + st.source + " · snapshot " + snapLabel(s),
        rows: D.refs, cols: D.layers, values: D.refs.map(function (r, ri) { return hm.map(function (row) { return row[ri]; }); }),
        diverging: st.metric === "cosine_centered", highlightRow: s.match, rowTitle: "", colTitle: "layer", metricName: METRIC_NAMES[st.metric],
        digits: 3,
      });
      var scope = el("div");
      legend(scope, refSeries, scope);
      var grid = el("div", { class: "charts" });
      scope.append(grid);
      metricsAvail().forEach(function (k) {
        var box = el("div", { class: "chartbox" }); grid.append(box);
        var data = slice(k, st.source, st.snap);
        lineChart(box, {
          name: "curve-" + k, title: METRIC_NAMES[k] + " per layer", xs: D.layers, xLabel: "layer", height: 250,
          series: refSeries.map(function (rs, ri) { return Object.assign({}, rs, { values: data.map(function (row) { return row[ri]; }) }); }),
        });
      });
      body.append(scope);
    }
    draw();
  });

  /* ------------------------------------------------------------------ spread map */
  section("spread", function (sec, body) {
    var LM = D.layer_map;
    if (!LM) return empty(body, missingNote(["layer_map.csv", "spread.csv", "metrics.csv"]));
    var srcs = Object.keys(LM);
    [["spread", "Raw spread (cosine max − min over references)"], ["spread_centered", "Centred spread"]].forEach(function (p) {
      if (!srcs.some(function (s) { return LM[s][p[0]]; })) return;
      heatmap(body, { name: "spread-" + p[0], title: p[1] + ", mean over user turns", rows: srcs, cols: D.layers, colTitle: "layer", rowTitle: "",
        values: srcs.map(function (s) { return LM[s][p[0]] || D.layers.map(function () { return null; }); }), markMax: true, cellH: 28, metricName: "spread" });
    });
    var accKeys = ["nearest_acc_centered", "nearest_acc"].filter(function (k) { return srcs.some(function (s) { return LM[s][k]; }); });
    if (!accKeys.length) return body.append(el("div", { class: "hint", text: "Nearest-reference accuracy not available (layer_map.csv missing)." }));
    var series = [];
    srcs.forEach(function (s, i) {
      accKeys.forEach(function (k) {
        if (LM[s][k]) series.push({ name: s + (k === "nearest_acc" ? " (raw)" : " (centred)"), values: LM[s][k], color: PAL[i % PAL.length], dash: k === "nearest_acc" ? "5 4" : null });
      });
    });
    var scope = el("div", { class: "charts one" });
    body.append(scope);
    legend(scope, series, scope);
    lineChart(scope, { name: "nearest-acc", title: "Nearest-reference accuracy on tagged user turns (solid: centred, dashed: raw)", xs: D.layers, xLabel: "layer",
      series: series, width: 1180, height: 280, digits: 2, hlines: [{ y: 1 / Math.max(1, D.refs.length), label: "chance" }] });
  });

  /* ------------------------------------------------------------------ user vs assistant */
  section("roles", function (sec, body) {
    var RM = D.role_means;
    var mets = ["cosine", "cosine_centered"].filter(function (k) { return RM && RM[k]; });
    if (!mets.length) return empty(body, missingNote(["metrics.csv", "spread.csv"]));
    var series = [];
    D.sources.forEach(function (s, i) {
      ["user", "assistant"].forEach(function (role) {
        series.push({ name: s + " · " + role, src: s, role: role, color: PAL[i % PAL.length], dash: role === "assistant" ? "6 4" : null });
      });
    });
    var scope = el("div");
    body.append(scope);
    legend(scope, series, scope);
    var grid = el("div", { class: "charts" });
    scope.append(grid);
    mets.forEach(function (k) {
      var box = el("div", { class: "chartbox" }); grid.append(box);
      lineChart(box, { name: "roles-" + k, title: "Mean " + METRIC_NAMES[k] + " by role (solid: user, dashed: assistant)", xs: D.layers, xLabel: "layer",
        series: series.map(function (s) { return Object.assign({}, s, { values: (RM[k][s.src] || {})[s.role] || [] }); }) });
      var gaps = el("div", { class: "gapnote" }, "user − assistant, mean over layers: ");
      D.sources.forEach(function (s, i) {
        var r = RM[k][s] || {}, u = r.user, a = r.assistant, acc = [];
        if (u && a) u.forEach(function (v, li) { if (isNum(v) && isNum(a[li])) acc.push(v - a[li]); });
        var gap = acc.length ? acc.reduce(function (x, y) { return x + y; }, 0) / acc.length : null;
        gaps.append((i ? " · " : "") + s + " ", el("b", { text: (isNum(gap) && gap > 0 ? "+" : "") + fmt(gap) }));
      });
      box.append(gaps);
    });
  });

  /* ------------------------------------------------------------------ fading memory */
  section("fading", function (sec, body, controls) {
    var F = D.fading;
    if (!F) { controls.remove(); return empty(body, G ? "No user turn has an emotion tag matching a reference label." : missingNote(["metrics.csv"])); }
    var st = { layer: D.focus.layer };
    controls.append(select("Layer", layerOpts, st.layer, function (v) { st.layer = +v; draw(); }),
      el("span", { class: "hint", text: "Default: " + D.focus.reason + "." }));
    var tagOf = {};
    D.snapshots.forEach(function (s) { tagOf[s.i] = s; });
    var series = D.sources.map(function (s, i) { return Object.assign({ name: s }, seriesStyle(i)); });
    function draw() {
      body.replaceChildren();
      var li = D.layers.indexOf(st.layer), scope = el("div");
      body.append(scope);
      legend(scope, series, scope);
      var grid = el("div", { class: "charts" });
      scope.append(grid);
      Object.keys(F.values).forEach(function (k) {
        var box = el("div", { class: "chartbox" }); grid.append(box);
        lineChart(box, { name: "fading-" + k, title: METRIC_NAMES[k] + " with the matched reference, layer " + st.layer, xs: F.turns, points: true,
          xLabel: "user turn (message index)",
          xTick: function (i) { return ["#" + F.turns[i], D.refs[tagOf[F.turns[i]].match]]; },
          tipTitle: function (i) { return snapLabel(tagOf[F.turns[i]]); },
          series: series.map(function (s) { return Object.assign({}, s, { values: (F.values[k][s.name] || [])[li] || [] }); }) });
      });
    }
    draw();
  });

  /* ------------------------------------------------------------------ logit lens */
  section("lens", function (sec, body, controls) {
    var L = D.logit_lens;
    if (!L) { controls.remove(); return empty(body, missingNote(["logit_lens.csv"])); }
    var keys = Object.keys(L).map(Number).sort(function (a, b) { return a - b; });
    if (!keys.length) { controls.remove(); return empty(body, "logit_lens.csv has no rows."); }
    var opts = keys.map(function (i) { return { value: i, label: snapIndex[i] !== undefined ? snapLabel(D.snapshots[snapIndex[i]]) : "#" + i }; });
    var st = { snap: keys[keys.length - 1] };
    controls.append(select("Snapshot", opts, st.snap, function (v) { st.snap = +v; draw(); }),
      el("span", { class: "hint", text: "␣ = space, ⏎ = newline, ⇥ = tab, \\uXXXX = other invisible character; cell shade = probability." }));
    var visible = function (tok) {
      return String(tok).replace(/ /g, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥")
        .replace(/[\u0000-\u001f\u007f-\u00a0\u00ad\u200b-\u200f\u2028-\u202f\u2060\ufeff]/g, function (c) {
          return "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
        }) || "∅";
    };
    function draw() {
      var rows = L[st.snap], k = Math.max.apply(null, rows.map(function (r) { return r.top.length; }).concat([1]));
      var head = el("tr", null, el("th", { text: "layer" }));
      for (var i = 1; i <= k; i++) head.append(el("th", { text: "top " + i }));
      var t = el("table", { class: "lens" }, el("thead", null, head));
      var tb = el("tbody");
      rows.forEach(function (r) {
        var tr = el("tr", null, el("th", { text: String(r.layer) }));
        r.top.forEach(function (tp) {
          var td = el("td", { title: "p = " + fmt(tp[1], 4) }, el("span", { class: "p", text: fmt(tp[1], 3) }), el("span", { class: "tok", text: visible(tp[0]) }));
          td.style.background = ramp(T.sequential.slice(0, 3), 0.08 + 0.6 * (isNum(tp[1]) ? tp[1] : 0));
          if (tp[1] > 0.55) td.className = "dark";
          tr.append(td);
        });
        tb.append(tr);
      });
      t.append(tb);
      body.replaceChildren(el("div", { class: "scroll" }, t));
    }
    draw();
  });

  document.body.setAttribute("data-rendered", "true");
})();
