// fae dashboard: polls api/samples and draws each series as an SVG path.
// No library: a chart is a few grid lines, two time labels and one <path>
// per series (gaps where a value is null).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 170, L = 52, R = 8, T = 8, B = 20; // chart size and margins, in SVG units
  const COLORS = ["#3b6fd8", "#e8710a", "#1e8e3e", "#d93025", "#9334e6", "#12939a", "#b06000", "#5f6368"];
  const MiB = 1048576;

  const state = { samples: [], last: 0, page: null, timer: 0 };

  // The fixed charts; the per-backend ones are added from the page's backends.
  const fixed = [
    { id: "calls", title: "Calls/s", series: [{ key: "calls", label: "calls/s", get: s => s.calls }] },
    { id: "latency", title: "Call latency (ms)", series: [
      { key: "p50", label: "p50", get: s => s.p50_ms },
      { key: "p99", label: "p99", get: s => s.p99_ms }] },
    { id: "sessions", title: "Active sessions", series: [{ key: "sessions", label: "sessions", get: s => s.sessions }] },
    { id: "failures", title: "Failures/s", series: [{ key: "failures", label: "failed calls/s", get: s => s.failures }] },
    { id: "slow", title: "Slow calls/s", series: [{ key: "slow", label: "slow calls/s", get: s => s.slow }] },
    { id: "heap", title: "Heap (MiB)", series: [{ key: "heap", label: "in objects", get: s => s.heap_bytes / MiB }] },
    { id: "gc", title: "GC pause (ms, longest in each interval)", series: [
      { key: "gc_pause", label: "pause", get: s => s.gc_pause_ms }] },
  ];

  function backendCharts(names) {
    const per = (i, j) => s => (s.b && s.b.length > 2 * i + j) ? s.b[2 * i + j] : null;
    return [
      { id: "backend_calls", title: "Backend operations/s",
        series: names.map((n, i) => ({ key: "calls_" + n, label: n, get: per(i, 0) })) },
      { id: "backend_failures", title: "Backend failures/s (any outcome but ok and miss)",
        series: names.map((n, i) => ({ key: "failures_" + n, label: n, get: per(i, 1) })) },
    ];
  }

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || v === Math.round(v)) return v.toFixed(0);
    if (a >= 1) return v.toFixed(1);
    return v.toPrecision(2);
  }

  // niceMax is the top of a chart's scale: the first of 1, 2, 2.5, 5 × 10ⁿ
  // at or above v (1 for an empty chart), so that its halves read well.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function clock(ms) { return new Date(ms).toTimeString().slice(0, 8); }

  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }

  // The chart's <div>, created on first use in the order of the charts.
  function chartBox(c) {
    let box = document.getElementById("chart-" + c.id);
    if (!box) {
      box = el("div", { class: "chart", id: "chart-" + c.id });
      box.appendChild(el("h2", {}, c.title));
      box.appendChild(el("svg:svg", { viewBox: "0 0 " + W + " " + H, "data-chart": c.id }));
      box.appendChild(el("div", { class: "legend" }));
      document.getElementById("charts").appendChild(box);
    }
    return box;
  }

  function drawChart(c, samples) {
    const box = chartBox(c), svg = box.querySelector("svg"), legend = box.querySelector(".legend");
    svg.replaceChildren();
    legend.replaceChildren();
    const t0 = samples.length ? samples[0].t : 0, t1 = samples.length ? samples[samples.length - 1].t : 1;
    let ymax = 0;
    for (const s of samples) for (const se of c.series) { const v = se.get(s); if (v != null && v > ymax) ymax = v; }
    ymax = niceMax(ymax);
    const x = t => L + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - L - R);
    const y = v => T + (1 - v / ymax) * (H - T - B);
    const axis = el("svg:g", { class: "axis" });
    for (const f of [0, 0.5, 1]) {
      axis.appendChild(el("svg:line", { class: "grid", x1: L, x2: W - R, y1: y(ymax * f), y2: y(ymax * f) }));
      axis.appendChild(el("svg:text", { x: L - 4, y: y(ymax * f) + 3, "text-anchor": "end" }, fmt(ymax * f)));
    }
    if (samples.length) {
      axis.appendChild(el("svg:text", { x: L, y: H - 5 }, clock(t0)));
      axis.appendChild(el("svg:text", { x: W - R, y: H - 5, "text-anchor": "end" }, clock(t1)));
    } else {
      axis.appendChild(el("svg:text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no samples yet"));
    }
    svg.appendChild(axis);
    c.series.forEach((se, i) => {
      let d = "", pen = "M", points = 0, nonzero = 0, lastv = null;
      for (const s of samples) {
        const v = se.get(s);
        if (v == null || !isFinite(v)) { pen = "M"; continue; }
        d += pen + x(s.t).toFixed(1) + " " + y(v).toFixed(1) + " ";
        pen = "L"; points++; lastv = v;
        if (v !== 0) nonzero++;
      }
      const color = COLORS[i % COLORS.length];
      svg.appendChild(el("svg:path", { class: "series", d: d.trim(), stroke: color, "data-series": se.key,
        "data-points": points, "data-nonzero": nonzero }));
      const item = el("span");
      item.appendChild(el("i", { style: "background:" + color }));
      item.appendChild(document.createTextNode(se.label + " "));
      item.appendChild(el("b", {}, fmt(lastv)));
      legend.appendChild(item);
    });
  }

  // drawBreakers draws one strip per breaker: a cell per sample coloured by state.
  function drawBreakers(keys, samples) {
    const sec = document.getElementById("breakers-section");
    if (!keys || !keys.length) { sec.hidden = true; return; }
    sec.hidden = false;
    const row = 16, LW = 230, h = keys.length * row + 18, box = document.getElementById("breakers");
    const svg = el("svg:svg", { viewBox: "0 0 " + (W * 2) + " " + h, "data-chart": "breakers" });
    const cw = samples.length ? (W * 2 - LW - R) / samples.length : 0;
    keys.forEach((k, r) => {
      const name = k.backend + " " + k.pool + " " + k.server;
      svg.appendChild(el("svg:text", { class: "rowlabel", x: 0, y: r * row + 11 }, name));
      // One rect per run of samples in the same state: a few rects per row
      // however many samples there are.
      const g = el("svg:g", { "data-breaker": name });
      const stateAt = i => (samples[i].br && samples[i].br.length > r) ? samples[i].br[r] : -1;
      let last = -1;
      for (let i = 0, j; i < samples.length; i = j) {
        last = stateAt(i);
        for (j = i + 1; j < samples.length && stateAt(j) === last; j++);
        g.appendChild(el("svg:rect", { x: (LW + i * cw).toFixed(1), y: r * row + 2, width: ((j - i) * cw).toFixed(1),
          height: row - 4, class: last >= 0 ? "st" + last : "stx", "data-samples": j - i }));
      }
      g.setAttribute("data-state", ["not reported", "closed", "half-open", "open"][last + 1]);
      svg.appendChild(g);
    });
    if (samples.length) {
      svg.appendChild(el("svg:text", { class: "rowlabel", x: LW, y: h - 4 }, clock(samples[0].t)));
      svg.appendChild(el("svg:text", { class: "rowlabel", x: W * 2 - R, y: h - 4, "text-anchor": "end" },
        clock(samples[samples.length - 1].t)));
    }
    box.replaceChildren(svg);
  }

  function drawHeader(p) {
    document.getElementById("self").textContent = p.self;
    document.getElementById("version").textContent = p.version + " (" + (p.build ? p.build + ", " : "") + p.go + ")";
    document.getElementById("uptime").textContent = duration(p.uptime_s);
    document.getElementById("sampling").textContent = "every " + p.interval_s + " s, last " +
      Math.round(p.capacity * p.interval_s / 60) + " min kept";
    const ul = document.getElementById("nodes");
    ul.replaceChildren();
    for (const n of p.nodes) {
      const li = el("li", { class: (n.self ? "self" : "") + (n.leaving ? " leaving" : ""), "data-addr": n.addr });
      li.appendChild(n.dashboard ? el("a", { href: n.dashboard }, n.addr) : el("span", { title: "dashboard off" }, n.addr));
      ul.appendChild(li);
    }
  }

  // drawReasons lists the calls by reason: reason, calls, share of all calls.
  function drawReasons(reasons, total) {
    const sec = document.getElementById("reasons-section");
    sec.hidden = !(reasons && reasons.length);
    if (sec.hidden) return;
    const body = document.querySelector("#reasons tbody");
    body.replaceChildren();
    for (const r of reasons) {
      const tr = el("tr", { "data-reason": r.reason });
      tr.appendChild(el("td", {}, r.reason));
      tr.appendChild(el("td", { class: "num" }, String(r.calls)));
      tr.appendChild(el("td", { class: "num" }, (total ? 100 * r.calls / total : 0).toFixed(1) + " %"));
      body.appendChild(tr);
    }
  }

  // drawModes lists the pools an operator switched: backend, pool, mode, set by, since.
  function drawModes(modes) {
    const sec = document.getElementById("modes-section");
    sec.hidden = !(modes && modes.length);
    if (sec.hidden) return;
    const body = document.querySelector("#modes tbody");
    body.replaceChildren();
    for (const m of modes) {
      const tr = el("tr", { "data-pool-mode": m.backend + " " + m.pool, class: "mode-" + m.mode });
      for (const v of [m.backend, m.pool, m.mode, m.source, m.since]) tr.appendChild(el("td", {}, v));
      body.appendChild(tr);
    }
  }

  function draw() {
    const p = state.page, samples = state.samples;
    drawHeader(p);
    for (const c of fixed.concat(backendCharts(p.backends || []))) drawChart(c, samples);
    drawBreakers(p.breakers, samples);
    drawReasons(p.reasons, p.reasons_total);
    drawModes(p.pool_modes);
  }

  function setStatus(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.className = bad ? "bad" : "";
  }

  async function poll() {
    let interval = state.page ? state.page.interval_s : 2;
    try {
      const r = await fetch("api/samples?since=" + state.last, { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const p = await r.json();
      if (p.last < state.last) { // faed restarted: its sample numbers start again
        state.samples = [];
        state.last = 0;
        state.timer = setTimeout(poll, 0);
        return;
      }
      state.samples = state.samples.concat(p.samples || []).slice(-p.capacity);
      state.last = p.last;
      state.page = p;
      interval = p.interval_s;
      draw();
      setStatus("live, " + state.samples.length + " samples", false);
    } catch (e) {
      setStatus("cannot reach faed (" + e.message + "), retrying", true);
    }
    state.timer = setTimeout(poll, Math.max(interval, 1) * 1000); // at most a poll a second, whatever the interval
  }

  poll();
})();
