// honed report.html: charts (inline SVG), the query explorer and the mining plot, drawn from the
// JSON that honed.report.html embeds in #honed-data. No library, no network.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("honed-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = { base: "#7b8794", tuned: "#1f6feb", bm25: "#b7791f", hybrid: "#2f9e44" };
  const PALETTE = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#b7791f", "#0c8599", "#c92a2a"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }
  function sv(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  const f4 = (v) => (v === null || v === undefined ? "-" : Number(v).toFixed(4));
  const f3 = (v) => Number(v).toFixed(3);
  const signed = (v) => (v > 0 ? "+" : "") + Number(v).toFixed(3);

  // --- tooltip: any element with data-tip shows it on hover --------------------------------
  const tip = document.getElementById("tip");
  document.addEventListener("mousemove", (ev) => {
    const target = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (!target) { tip.hidden = true; return; }
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
    const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    tip.style.left = x + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  });

  // --- scales and ticks --------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    if (hi - lo < 1e-12) { lo -= 0.05; hi += 0.05; }
    const raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw))), e = raw / p;
    const step = (e < 1.5 ? 1 : e < 3 ? 2 : e < 7 ? 5 : 10) * p;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toFixed(10));
    return out;
  }
  function scale(values, lo, hi, log, pad) {
    const vs = values.filter((v) => v !== null && v !== undefined && isFinite(v) && (!log || v > 0));
    let a = Math.min(...vs), b = Math.max(...vs);
    if (!vs.length) { a = 0; b = 1; }
    const t = log ? Math.log2 : (v) => v;
    let ta = t(a), tb = t(b);
    if (tb - ta < 1e-12) { ta -= 0.5; tb += 0.5; }
    const span = tb - ta;
    ta -= span * pad; tb += span * pad;
    const f = (v) => lo + ((t(v) - ta) / (tb - ta)) * (hi - lo);
    f.domain = [log ? Math.pow(2, ta) : ta, log ? Math.pow(2, tb) : tb];
    return f;
  }
  function log2Ticks(lo, hi) {
    const out = [];
    for (let e = Math.ceil(Math.log2(lo)); e <= Math.floor(Math.log2(hi)); e++) out.push(Math.pow(2, e));
    return out;
  }

  // --- one chart: series of points (and lines), horizontal and vertical marker lines ----------
  function chart(host, spec) {
    const W = spec.width || 560, H = spec.height || 300;
    const M = { l: 54, r: spec.y2 ? 54 : 18, t: 12, b: 42 };
    const all = (axis, key) => spec.series.filter((s) => (s.axis || "y") === axis)
      .flatMap((s) => s.points.map((p) => p[key]));
    const xv = spec.series.flatMap((s) => s.points.map((p) => p.x)).concat((spec.vlines || []).map((v) => v.x));
    const yv = all("y", "y").concat((spec.hlines || []).map((h) => h.y));
    const x = scale(xv, M.l, W - M.r, spec.x.log, 0.04);
    const y = scale(yv, H - M.b, M.t, false, 0.08);
    const y2 = spec.y2 ? scale(all("y2", "y"), H - M.b, M.t, false, 0.08) : null;
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.label || "" });
    const grid = sv("g", { class: "grid" }), axes = sv("g", { class: "axis" });
    const yt = niceTicks(y.domain[0], y.domain[1], 5);
    for (const t of yt) {
      grid.append(sv("line", { x1: M.l, x2: W - M.r, y1: y(t), y2: y(t) }));
      const label = sv("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" });
      label.textContent = spec.y.format ? spec.y.format(t) : +t.toFixed(3);
      axes.append(label);
    }
    if (y2) {
      for (const t of niceTicks(y2.domain[0], y2.domain[1], 5)) {
        const label = sv("text", { x: W - M.r + 6, y: y2(t) + 4 });
        label.textContent = +t.toFixed(3);
        axes.append(label);
      }
    }
    const xt = spec.x.ticks || (spec.x.log ? log2Ticks(x.domain[0], x.domain[1]) : niceTicks(x.domain[0], x.domain[1], 6));
    for (const t of xt) {
      axes.append(sv("line", { x1: x(t), x2: x(t), y1: H - M.b, y2: H - M.b + 4 }));
      const label = sv("text", { x: x(t), y: H - M.b + 16, "text-anchor": "middle" });
      label.textContent = spec.x.format ? spec.x.format(t) : String(+t.toFixed(3));
      axes.append(label);
    }
    axes.append(sv("path", { d: `M${M.l},${M.t}V${H - M.b}H${W - M.r}`, fill: "none" }));
    const xl = sv("text", { x: (M.l + W - M.r) / 2, y: H - 6, "text-anchor": "middle" });
    xl.textContent = spec.x.label;
    const yl = sv("text", { x: 12, y: (M.t + H - M.b) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(M.t + H - M.b) / 2})` });
    yl.textContent = spec.y.label;
    axes.append(xl, yl);
    if (spec.y2) {
      const l2 = sv("text", { x: W - 10, y: (M.t + H - M.b) / 2, "text-anchor": "middle", transform: `rotate(90 ${W - 10} ${(M.t + H - M.b) / 2})` });
      l2.textContent = spec.y2.label;
      axes.append(l2);
    }
    svg.append(grid, axes);
    for (const h of spec.hlines || []) {
      svg.append(sv("line", { x1: M.l, x2: W - M.r, y1: y(h.y), y2: y(h.y), stroke: h.color, "stroke-width": 2, "stroke-dasharray": h.dash || "6 4" }));
      svg.append(sv("line", { x1: M.l, x2: W - M.r, y1: y(h.y), y2: y(h.y), stroke: "transparent", "stroke-width": 10, class: "pt", "data-tip": `${h.name}: ${f4(h.y)}` }));
    }
    for (const v of spec.vlines || []) {
      svg.append(sv("line", { x1: x(v.x), x2: x(v.x), y1: M.t, y2: H - M.b, stroke: v.color || "#c92a2a", "stroke-dasharray": "3 3" }));
      const right = x(v.x) > (M.l + W - M.r) / 2;  // label on the side with room
      const t = sv("text", { x: x(v.x) + (right ? -4 : 4), y: M.t + 10, "text-anchor": right ? "end" : "start" });
      t.textContent = v.label;
      t.style.fill = v.color || "#c92a2a";
      svg.append(t);
    }
    for (const s of spec.series) {
      const ys = s.axis === "y2" ? y2 : y;
      const pts = s.points.filter((p) => p.y !== null && p.y !== undefined);
      if (s.line !== false && pts.length > 1) {
        const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${ys(p.y).toFixed(1)}`).join("");
        svg.append(sv("path", { d, fill: "none", stroke: s.color, "stroke-width": s.width || 2, "stroke-dasharray": s.dash || "", opacity: s.opacity || 1 }));
      }
      if (s.r === 0) continue;
      for (const p of pts) {
        svg.append(sv("circle", { cx: x(p.x), cy: ys(p.y), r: p.r || s.r || 4, fill: p.fill || s.color, stroke: p.stroke || "#fff", "stroke-width": p.stroke ? 2 : 1, class: "pt", "data-tip": p.tip }));
      }
    }
    const legend = el("div", { class: "caption" }, ...[...spec.series.filter((s) => s.name), ...(spec.hlines || [])]
      .map((s) => el("span", { style: `margin-right:14px;color:${s.color}` }, "\u25A0 ", s.name)));
    host.append(svg, legend);
  }

  // --- nDCG@10 vs dimension ----------------------------------------------------------------
  function dimsChart(split) {
    const host = document.getElementById("chart-dims");
    host.replaceChildren();
    const m = D.metrics, dims = Object.keys(m.base[split]).map(Number).sort((a, b) => a - b);
    const series = ["base", "tuned"].filter((s) => m[s]).map((s) => ({
      name: s, color: COLORS[s],
      points: dims.map((d) => ({ x: d, y: m[s][split][String(d)], tip: `${s} @ ${d} dims (${split})\nnDCG@10 ${f4(m[s][split][String(d)])}` })),
    }));
    const hlines = ["bm25", "hybrid"].filter((s) => m[s]).map((s) => ({ name: s === "bm25" ? "BM25" : "hybrid", color: COLORS[s], y: m[s][split][s] }));
    chart(host, { series, hlines, x: { log: true, ticks: dims, label: "embedding dimension (Matryoshka prefix)" }, y: { label: "nDCG@10" }, label: "nDCG@10 vs dimension" });
  }
  document.querySelectorAll('[data-chart="dims"] button').forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll('[data-chart="dims"] button').forEach((o) => o.classList.toggle("on", o === b));
    dimsChart(b.dataset.split);
  }));

  // --- training curve ----------------------------------------------------------------------
  function curveChart() {
    const host = document.getElementById("chart-curve");
    if (!D.curve.length) { host.append(el("p", { class: "missing" }, "No training curve in this run.")); return; }
    const keys = Object.keys(D.curve[0]).filter((k) => k.startsWith("dev_ndcg@10"));
    const series = keys.map((k, i) => {
      const name = k === "dev_ndcg@10" ? "dev nDCG@10 (full dim)" : "dev nDCG@10 " + k.slice("dev_ndcg@10@".length);
      return { name, color: PALETTE[i % PALETTE.length], points: D.curve.map((c) => ({ x: c.epoch, y: c[k] === undefined ? null : c[k], tip: `epoch ${c.epoch}${c.epoch === D.best_epoch ? " (kept)" : ""}\n${name} ${f4(c[k])}` })) };
    });
    if (D.loss_curve.length) {
      series.push({ name: "train loss (right axis)", color: "#adb5bd", axis: "y2", width: 1.5, r: D.loss_curve.length > 80 ? 0 : 2.5,
        points: D.loss_curve.map((p) => ({ x: p.epoch, y: p.loss, tip: `epoch ${(+p.epoch).toFixed(2)}\ntrain loss ${f4(p.loss)}` })) });
    }
    const kept = D.best_epoch === null || D.best_epoch === undefined ? [] : [{ x: D.best_epoch, label: `kept: epoch ${D.best_epoch}${D.best_epoch === 0 ? " (untuned)" : ""}` }];
    chart(host, { series, vlines: kept, x: { label: "epoch (0 = untuned)" }, y: { label: "dev nDCG@10" }, y2: D.loss_curve.length ? { label: "train loss" } : null, label: "training curve" });
  }

  // --- the planner's Pareto front ----------------------------------------------------------
  function planCharts() {
    const host = document.getElementById("chart-plan"), P = D.plan;
    const caption = document.getElementById("plan-caption");
    if (!P) { host.append(el("p", { class: "missing" }, D.plan_skipped ? "Not measured: " + D.plan_skipped : "This run has no deployment plan (an older run folder).")); return; }
    const precisions = [...new Set(P.rows.map((r) => (r.shortlist === null ? "exact" : r.precision)))];
    for (const [cost, label, front, log] of [["bytes_per_doc", "fast-tier bytes per document (log)", P.front_bytes, true], ["latency_ms_median", "median latency per query, ms", P.front_latency, false]]) {
      const tipOf = (r) => `${r.name}\nnDCG@10 ${f4(r.ndcg_at_10)}, Recall@100 ${f4(r.recall_at_100)}\n${r.bytes_per_doc.toLocaleString()} B/doc, median ${r.latency_ms_median.toFixed(2)} ms (p95 ${r.latency_ms_p95.toFixed(2)})` + (r.name === P.recommended ? "\nrecommended (chosen on dev)" : "") + (front.includes(r.name) ? "\non the Pareto front" : "");
      const series = precisions.map((p, i) => ({ name: p, color: PALETTE[i + 1], line: false, r: 4.5,
        points: P.rows.filter((r) => (r.shortlist === null ? "exact" : r.precision) === p).map((r) => ({ x: r[cost], y: r.ndcg_at_10, tip: tipOf(r), r: r.name === P.recommended ? 8 : undefined, stroke: r.name === P.recommended ? "#000" : undefined })) }));
      const frontRows = front.map((n) => P.rows.find((r) => r.name === n)).filter(Boolean);
      series.unshift({ name: "Pareto front", color: "#1d232b", width: 1.5, r: 0, points: frontRows.map((r) => ({ x: r[cost], y: r.ndcg_at_10 })) });
      const box = el("div", { class: "chart", id: "chart-plan-" + cost });
      host.append(box);
      chart(box, { series, x: { log, label, format: log ? (t) => (t >= 1024 ? t / 1024 + "k" : String(t)) : null }, y: { label: "nDCG@10 (test)" }, label: "Pareto front " + cost });
    }
    caption.textContent = `Each point is one configuration on the test split (hover for its numbers); the black line joins the configurations no other beats on both cost and nDCG@10. The large outlined point is the recommendation, chosen on dev: ${P.recommended} (reference: ${P.reference}).`;
  }

  // --- the query explorer ------------------------------------------------------------------
  function explorer() {
    const host = document.getElementById("explorer-body"), E = D.explorer;
    if (E.missing) { host.append(el("p", { class: "missing" }, E.missing)); return; }
    const qs = Object.entries(E.queries).map(([qid, q]) => Object.assign({ qid, delta: q.tuned_ndcg - q.base_ndcg }, q));
    const count = (o) => qs.filter((q) => q.outcome === o).length;
    const state = { filter: "all", text: "", sort: "delta", dir: 1 };
    const filters = [["all", `All ${qs.length}`], ["win", `Wins ${count("win")}`], ["loss", `Losses ${count("loss")}`], ["tie", `Ties ${count("tie")}`]];
    const buttons = filters.map(([key, label]) => el("button", { "data-filter": key, class: key === "all" ? "on" : null }, label));
    const search = el("input", { type: "search", id: "query-search", placeholder: "search query text or id" });
    const shown = el("span", { class: "caption", id: "query-count" });
    host.append(el("div", { class: "toolbar" }, ...buttons, search, shown));
    const cols = [["qid", "query id", "text"], ["text", "query", "text"], ["base_ndcg", "base nDCG@10"], ["tuned_ndcg", "tuned nDCG@10"], ["delta", "change"], ["first", "first relevant rank (base \u2192 tuned)"]];
    const head = el("tr", {}, ...cols.map(([k, label, cls]) => el("th", { "data-sort": k, class: cls || null }, label)));
    const body = el("tbody");
    host.append(el("div", { class: "scroll" }, el("table", { class: "queries", id: "query-table" }, el("thead", {}, head), body)));
    const detail = el("div", { id: "query-detail" });
    host.append(detail);
    const rankText = (r) => (r === null || r === undefined ? ">100" : String(r));
    const key = (q, k) => (k === "first" ? (q.tuned_first || 1000) - (q.base_first || 1000) : q[k]);
    function render() {
      const text = state.text.toLowerCase();
      const rows = qs.filter((q) => (state.filter === "all" || q.outcome === state.filter) && (!text || q.text.toLowerCase().includes(text) || q.qid.toLowerCase().includes(text)))
        .sort((a, b) => { const ka = key(a, state.sort), kb = key(b, state.sort); return (ka < kb ? -1 : ka > kb ? 1 : a.qid < b.qid ? -1 : 1) * state.dir; });
      body.replaceChildren(...rows.map((q) => el("tr", { "data-qid": q.qid, class: q.outcome + (detail.dataset.qid === q.qid ? " sel" : "") },
        el("td", { class: "text" }, q.qid), el("td", { class: "text" }, q.text), el("td", {}, f3(q.base_ndcg)), el("td", {}, f3(q.tuned_ndcg)), el("td", { class: "d" }, signed(q.delta)),
        el("td", {}, `${rankText(q.base_first)} \u2192 ${rankText(q.tuned_first)}`))));
      shown.textContent = `${rows.length} of ${qs.length} test queries shown; click one to open it. Click a column to sort.`;
    }
    buttons.forEach((b) => b.addEventListener("click", () => { state.filter = b.dataset.filter; buttons.forEach((o) => o.classList.toggle("on", o === b)); render(); }));
    search.addEventListener("input", () => { state.text = search.value; render(); });
    head.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
      state.dir = state.sort === th.dataset.sort ? -state.dir : 1; state.sort = th.dataset.sort; render();
    }));
    body.addEventListener("click", (ev) => { const tr = ev.target.closest("tr"); if (tr) openQuery(tr.dataset.qid); });
    function side(system, label, q, other) {
      const otherRank = new Map(q[other].map(([d], i) => [d, i + 1]));
      const items = q[system].map(([doc, score], i) => {
        const grade = q.judged[doc], info = E.docs[doc] || { title: "", snippet: "" };
        const cls = grade === undefined ? null : grade >= 1 ? "rel" : "nonrel";
        const mark = grade === undefined ? "" : grade >= 1 ? `\u2713 relevant${grade > 1 ? " (" + grade + ")" : ""}` : "\u2717 judged not relevant";
        const elsewhere = otherRank.has(doc) ? `${other} rank ${otherRank.get(doc)}` : `not in ${other} top ${E.k}`;
        return el("li", { class: cls, "data-doc": doc }, el("span", { class: "rank" }, i + 1),
          el("div", {}, mark ? el("span", { class: "mark " + cls }, mark + " ") : null, el("span", { class: "title" }, info.title || doc),
            el("div", { class: "meta" }, `${doc} \u00B7 score ${f4(score)} \u00B7 ${elsewhere}`)),
          el("div", { class: "snippet" }, info.snippet + (info.snippet.length >= 240 ? "\u2026" : "")));
      });
      return el("div", { class: "side", id: "top-" + system }, el("h4", {}, `${label}: top ${E.k} (first relevant at rank ${rankText(q[system + "_first"])})`), el("ol", {}, ...items));
    }
    function openQuery(qid) {
      const q = E.queries[qid];
      detail.dataset.qid = qid;
      const shownDocs = new Set([...q.base, ...q.tuned].map(([d]) => d));
      const unseen = Object.entries(q.judged).filter(([d, g]) => g >= 1 && !shownDocs.has(d))
        .map(([d]) => `${d}${E.docs[d] && E.docs[d].title ? " (" + E.docs[d].title + ")" : ""}`);
      detail.replaceChildren(...[el("h3", {}, `${qid}: ${q.text}`),
        el("p", {}, `nDCG@10 base ${f3(q.base_ndcg)} \u2192 tuned ${f3(q.tuned_ndcg)} (${signed(q.tuned_ndcg - q.base_ndcg)}, a ${q.outcome}). First relevant document: base rank ${rankText(q.base_first)} \u2192 tuned rank ${rankText(q.tuned_first)}.`),
        el("div", { class: "sides" }, side("base", "Base model", q, "tuned"), side("tuned", "Tuned model", q, "base")),
        unseen.length ? el("p", { class: "caption" }, `Relevant but in neither top ${E.k}: ${unseen.join("; ")}.`) : null].filter(Boolean));
      body.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("sel", tr.dataset.qid === qid));
      detail.scrollIntoView({ block: "nearest" });
    }
    render();
  }

  // --- mining: score distributions and example rows ------------------------------------------
  function histogram(values, lo, hi, bins) {
    const counts = new Array(bins).fill(0), w = (hi - lo) / bins || 1;
    for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w)))]++;
    return counts.map((c, i) => ({ lo: lo + i * w, hi: lo + (i + 1) * w, c }));
  }
  function mining() {
    const host = document.getElementById("mining-body"), M = D.mining, R = D.mining_report;
    const facts = [["training pairs", R.pairs], ["pairs short of " + R.num_negatives + " negatives", R.pairs_short], ["pairs with no negative", R.pairs_without_negatives],
      ["dropped above the margin", R.dropped_margin], ["dropped: known positive", R.dropped_known_positive], ["filled from deeper", R.pairs_filled_from_deeper]];
    host.append(el("div", { class: "counts" }, ...facts.map(([k, v]) => el("div", {}, el("b", {}, v === undefined ? "-" : Number(v).toLocaleString()), k))));
    if (M.missing) { host.append(el("p", { class: "missing" }, M.missing)); return; }
    const dists = [["positives", M.positive, "#2f9e44"], ["kept negatives", M.kept_negative, "#1f6feb"], [`dropped by the margin (> ${M.margin} x positive)`, M.dropped_margin, "#c92a2a"]].filter((d) => d[1].length);
    const all = dists.flatMap((d) => d[1]);
    if (all.length) {
      const lo = Math.min(...all), hi = Math.max(...all), bins = 30;
      const series = dists.map(([name, values, color]) => ({ name: `${name} (${values.length.toLocaleString()})`, color, r: 2.5,
        points: histogram(values, lo, hi, bins).map((b) => ({ x: (b.lo + b.hi) / 2, y: b.c / values.length, tip: `${name}\nscore ${b.lo.toFixed(3)}\u2013${b.hi.toFixed(3)}: ${b.c} of ${values.length} (${(100 * b.c / values.length).toFixed(1)}%)` })) }));
      const box = el("div", { class: "chart", id: "chart-mining" });
      host.append(box);
      chart(box, { series, x: { label: "cosine score with the query (base model)" }, y: { label: "share of the sample", format: (t) => Math.round(t * 100) + "%" }, width: 760, height: 280, label: "mining score distributions" });
    }
    const rows = M.examples.map((e) => el("tr", {}, el("td", {}, el("b", {}, e.query), el("div", { class: "caption" }, e.query_id + (e.hardest ? " \u00B7 one of the hardest rows" : ""))),
      el("td", {}, e.positive, el("div", { class: "caption" }, `${e.positive_id} \u00B7 score ${e.positive_score.toFixed(3)}`)),
      el("td", {}, ...e.negatives.map((n) => el("div", { style: "margin-bottom:6px" }, n.text, el("div", { class: "caption" }, `${n.id} \u00B7 score ${n.score.toFixed(3)}`))))));
    host.append(el("h3", {}, "Example rows (query, positive, its hardest negatives)"),
      el("table", { class: "examples" }, el("thead", {}, el("tr", {}, el("th", {}, "query"), el("th", {}, "positive"), el("th", {}, "hard negatives, hardest first"))), el("tbody", {}, ...rows)));
  }

  // One section failing (a field an older run lacks) must not blank the others.
  for (const [id, draw] of [["chart-dims", () => dimsChart("test")], ["chart-curve", curveChart], ["chart-plan", planCharts], ["explorer-body", explorer], ["mining-body", mining]]) {
    try { draw(); } catch (err) {
      document.getElementById(id).append(el("p", { class: "missing" }, "Could not draw this part: " + err));
    }
  }
})();
