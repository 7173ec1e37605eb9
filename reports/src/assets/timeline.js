"use strict";
// faultline report: the timeline of a history, one page of events at a time.
// Data comes from the JSON block #fl-data (columnar, see reports/src/timeline.rs). Every text
// from the history is put into the page with textContent, never as markup.
(() => {
  const PAGE = 200; // events per page
  const ROW = 22; // px per event row
  const COL = 180; // px per process column
  const GUTTER = 170; // px for the row labels (event index, time)
  const NEMW = 200; // px for the nemesis column
  const el = (id) => document.getElementById(id);
  const div = (cls, text) => {
    const d = document.createElement("div");
    d.className = cls;
    if (text !== undefined) d.textContent = text;
    return d;
  };

  // Plots: mark each image once the browser has decoded it (tests read data-loaded).
  for (const img of document.querySelectorAll("img.plot")) {
    const mark = () => { img.dataset.loaded = img.naturalWidth > 0 ? "yes" : "no"; };
    if (img.complete) mark();
    else {
      img.addEventListener("load", mark);
      img.addEventListener("error", () => { img.dataset.loaded = "error"; });
    }
  }
  const copy = el("copy-cmd");
  if (copy) {
    copy.addEventListener("click", () => {
      const text = el("rerun").textContent;
      if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
      const r = document.createRange();
      r.selectNodeContents(el("rerun"));
      const s = window.getSelection();
      s.removeAllRanges();
      s.addRange(r);
    });
  }

  const dataEl = el("fl-data");
  const view = el("tl-view");
  if (!dataEl || !view) return;
  const scriptStartMs = performance.now();
  const D = JSON.parse(dataEl.textContent);
  const S = D.s, N = D.events, O = D.ops, n = O.p.length;
  const str = (i) => (i < 0 ? null : S[i]);

  // Decode the columns.
  const inv = new Int32Array(n), comp = new Int32Array(n);
  const t0 = new Float64Array(n), dur = new Float64Array(n);
  let acc = 0, tacc = 0;
  for (let j = 0; j < n; j++) {
    acc += O.i[j];
    inv[j] = acc;
    comp[j] = O.c[j] < 0 ? -1 : acc + O.c[j];
    tacc += O.t[j];
    t0[j] = tacc;
    dur[j] = O.d[j];
  }
  const posOp = new Int32Array(N).fill(-1);
  for (let j = 0; j < n; j++) {
    posOp[inv[j]] = j;
    if (comp[j] >= 0) posOp[comp[j]] = j;
  }
  const nemAt = new Map();
  for (let k = 0; k < D.nem.i.length; k++) nemAt.set(D.nem.i[k], k);
  let idx = null;
  if (D.idx) {
    idx = new Float64Array(N);
    let a = 0;
    for (let p = 0; p < N; p++) { a += D.idx[p]; idx[p] = a; }
  }
  const indexOf = (p) => (idx ? idx[p] : p);
  const posOf = (index) => {
    if (!idx) return index >= 0 && index < N ? index : -1;
    let lo = 0, hi = N - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (idx[mid] === index) return mid;
      if (idx[mid] < index) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  };
  const flagged = new Set();
  for (const p of D.flag) if (posOp[p] >= 0) flagged.add(posOp[p]);

  const fmtTime = (t) => {
    if (Number.isNaN(t)) return "";
    return D.tick_ns ? (t / 1e6).toFixed(6) + " s" : "line " + t;
  };
  const fmtDur = (d) => {
    if (d < 0) return "never completed";
    return D.tick_ns ? (d / 1e3).toFixed(3) + " ms" : d + " lines";
  };
  const timeAt = (p) => {
    const j = posOp[p];
    if (j >= 0) return p === inv[j] ? t0[j] : t0[j] + dur[j];
    const k = nemAt.get(p);
    return k === undefined ? NaN : D.nem.t[k];
  };
  const OUT = ["ok", "fail", "info"];
  const opLabel = (j) => {
    const k = str(O.k[j]), v = str(O.v[j]), r = str(O.r[j]), e = str(O.e[j]);
    let s = OUT[O.o[j]] + " " + str(O.f[j]);
    if (k !== null) s += " " + k;
    if (v !== null) s += " " + v;
    if (r !== null && r !== v) s += " \u2192 " + r;
    if (e !== null) s += " (" + e + ")";
    if (comp[j] < 0) s += " (never completed)";
    return s;
  };

  // Ops still open at the start of each page (a process has at most one open op).
  const pages = Math.max(1, Math.ceil(N / PAGE));
  const openAt = new Array(pages);
  for (let j = 0; j < n; j++) {
    const a = Math.floor(inv[j] / PAGE);
    const b = comp[j] < 0 ? a : Math.floor(comp[j] / PAGE);
    for (let pg = a + 1; pg <= b; pg++) (openAt[pg] || (openAt[pg] = [])).push(j);
  }

  const detail = el("tl-detail");
  const showDetail = (j) => {
    detail.textContent = "";
    detail.hidden = false;
    const h = document.createElement("h4");
    h.textContent = "operation " + j + (flagged.has(j) ? " (named by an anomaly)" : "");
    detail.appendChild(h);
    const dl = document.createElement("dl");
    const row = (k, v) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dl.appendChild(dt);
      dl.appendChild(dd);
    };
    row("process", String(O.p[j]));
    row("f", str(O.f[j]));
    if (O.k[j] >= 0) row("key", str(O.k[j]));
    row("outcome", OUT[O.o[j]]);
    row("invoked", "#" + indexOf(inv[j]) + " at " + fmtTime(t0[j]));
    row("completed", comp[j] < 0 ? "never" : "#" + indexOf(comp[j]) + " at " + fmtTime(t0[j] + dur[j]));
    row("latency", fmtDur(dur[j]));
    row("value", str(O.v[j]) ?? "null");
    if (comp[j] >= 0) row("result", str(O.r[j]) ?? "null");
    if (O.e[j] >= 0) row("error", str(O.e[j]));
    detail.appendChild(dl);
  };

  let current = 0;
  const render = (pg, target) => {
    pg = Math.min(Math.max(0, pg), pages - 1);
    current = pg;
    const a = pg * PAGE, b = Math.min(N, a + PAGE);
    const list = (openAt[pg] || []).slice();
    for (let p = a; p < b; p++) {
      const j = posOp[p];
      if (j >= 0 && inv[j] === p) list.push(j);
    }
    const procs = [...new Set(list.map((j) => O.p[j]))].sort((x, y) => x - y);
    const colOf = new Map(procs.map((p, i) => [p, i]));
    const H = (b - a) * ROW;
    const W = GUTTER + NEMW + procs.length * COL;
    view.textContent = "";
    const grid = div("tl-grid");
    grid.style.width = W + "px";
    const head = div("tl-head");
    head.style.width = W + "px";
    const hcell = (text, left, width) => {
      const c = div("tl-hcell", text);
      c.style.left = left + "px";
      c.style.width = width + "px";
      head.appendChild(c);
    };
    hcell("event / time", 0, GUTTER);
    hcell("nemesis", GUTTER, NEMW);
    procs.forEach((p, i) => hcell("process " + p, GUTTER + NEMW + i * COL, COL));
    grid.appendChild(head);
    const body = div("tl-body");
    body.style.height = H + "px";
    body.style.width = W + "px";
    for (const [k, s, e] of D.faults) {
      const end = e < 0 ? N - 1 : e;
      if (end < a || s >= b || s < 0) continue;
      const f = div("tl-fault");
      f.style.top = (Math.max(s, a) - a) * ROW + "px";
      f.style.height = (Math.min(end, b - 1) - Math.max(s, a) + 1) * ROW + "px";
      f.style.background = D.kinds[k][1];
      f.title = "fault: " + D.kinds[k][0];
      body.appendChild(f);
    }
    for (let p = a; p < b; p++) {
      const r = div("tl-row" + ((p & 1) ? " odd" : ""), "#" + indexOf(p) + "  " + fmtTime(timeAt(p)));
      r.style.top = (p - a) * ROW + "px";
      r.id = "tl-row-" + p;
      body.appendChild(r);
      const k = nemAt.get(p);
      if (k !== undefined) {
        const v = str(D.nem.v[k]);
        const text = str(D.nem.f[k]) + (v === null ? "" : " " + v);
        const m = div("tl-nem", text);
        m.title = text;
        m.style.top = (p - a) * ROW + 1 + "px";
        m.style.left = GUTTER + 2 + "px";
        m.style.width = NEMW - 4 + "px";
        m.dataset.pos = p;
        body.appendChild(m);
      }
    }
    let targetBox = null;
    for (const j of list) {
      const end = comp[j] < 0 ? inv[j] : comp[j];
      const top = (Math.max(inv[j], a) - a) * ROW;
      const bottom = (Math.min(end, b - 1) - a + 1) * ROW;
      let cls = "tl-op o-" + OUT[O.o[j]];
      if (inv[j] < a) cls += " cont-top";
      if (end >= b) cls += " cont-bottom";
      if (comp[j] < 0) cls += " open";
      if (flagged.has(j)) cls += " flag";
      const label = opLabel(j);
      const box = div(cls, label);
      box.title = label;
      box.style.top = top + 1 + "px";
      box.style.height = Math.max(bottom - top - 2, ROW - 2) + "px";
      box.style.left = GUTTER + NEMW + colOf.get(O.p[j]) * COL + 2 + "px";
      box.style.width = COL - 4 + "px";
      box.dataset.op = j;
      if (target !== undefined && posOp[target] === j) {
        box.classList.add("target");
        targetBox = box;
      }
      body.appendChild(box);
    }
    grid.appendChild(body);
    view.appendChild(grid);
    el("tl-status").textContent = N === 0
      ? "no events"
      : "page " + (pg + 1) + " of " + pages + " \u00b7 events #" + indexOf(a) + "\u2013#" + indexOf(b - 1) +
        " of " + N + " \u00b7 " + list.length + " ops on this page, " + n + " in all";
    el("tl-page").value = pg + 1;
    el("tl-page").max = pages;
    if (document.body.dataset.timeline !== "ready") {
      // How long the page took: since navigation, and in this script (parse, decode, render).
      document.body.dataset.readyMs = String(Math.round(performance.now()));
      document.body.dataset.scriptMs = String(Math.round(performance.now() - scriptStartMs));
    }
    document.body.dataset.timeline = "ready";
    document.body.dataset.timelinePage = String(pg + 1);
    if (target !== undefined) {
      view.scrollTop = Math.max(0, (target - a) * ROW - 120);
      if (targetBox) showDetail(Number(targetBox.dataset.op));
      else {
        const row = el("tl-row-" + target);
        if (row) row.classList.add("target");
      }
    }
  };

  view.addEventListener("click", (ev) => {
    const box = ev.target.closest(".tl-op");
    if (!box) return;
    for (const t of view.querySelectorAll(".target")) t.classList.remove("target");
    box.classList.add("target");
    showDetail(Number(box.dataset.op));
  });
  el("tl-first").addEventListener("click", () => render(0));
  el("tl-prev").addEventListener("click", () => render(current - 1));
  el("tl-next").addEventListener("click", () => render(current + 1));
  el("tl-last").addEventListener("click", () => render(pages - 1));
  el("tl-page").addEventListener("change", () => render(Number(el("tl-page").value) - 1));

  const goToIndex = (index) => {
    const p = posOf(index);
    if (p < 0) {
      el("tl-status").textContent = "event #" + index + " is not in this history";
      return;
    }
    render(Math.floor(p / PAGE), p);
    el("timeline").scrollIntoView();
  };
  const fromHash = () => {
    const m = /^#ev-(\d+)$/.exec(location.hash);
    if (!m) return false;
    goToIndex(Number(m[1]));
    return true;
  };
  const go = () => {
    const v = el("tl-goto").value;
    if (v === "") return;
    if (location.hash === "#ev-" + v) fromHash();
    else location.hash = "#ev-" + v;
  };
  el("tl-go").addEventListener("click", go);
  el("tl-goto").addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
  window.addEventListener("hashchange", fromHash);
  if (!fromHash()) render(0);
})();
