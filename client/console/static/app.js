// The console's front end: plain ES modules, no build step. It renders the JSON of the
// console server (client/console/_server.py) and follows its live stream (/api/events).
import { lineChart, stackedBars } from "/static/charts.js";

const LIVE_BLOCKS_MAX = 100; // blocks kept in the page's live list
const state = { network: null, blocks: [], head: 0 };
const view = document.getElementById("view");

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// Integers past 2**53 arrive as decimal strings (the server's js_safe): group their
// digits as text, never through a float.
const num = (v) => (v === null || v === undefined ? "-" : typeof v === "string" ? v.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : Number(v).toLocaleString("en-US"));
const short = (hex) => esc(String(hex).slice(0, 16));
// Block times and deadlines (ms) as UTC; "-" for what no Date holds, since its RangeError
// would blank the whole page (a pending trade's deadline may be 2**64 - 1, sent as a string).
const DATE_MS_MAX = 8.64e15; // ECMAScript's time values: 10**8 days either side of 1970
const iso = (ms) => (typeof ms === "number" && Math.abs(ms) <= DATE_MS_MAX ? new Date(ms).toISOString() : null);
const time = (ms) => iso(ms)?.replace("T", " ").slice(0, -1) ?? "-"; // years past 9999 too
const day = (ms) => iso(ms)?.split("T")[0] ?? "-";
const codeClass = (c) => (c === "OK" ? "code-OK" : c === "PENDING_SETTLEMENT" || c === "PARTIALLY_SETTLED" ? "code-wait" : "code-bad");
const txLink = (id) => `<a class="mono" href="#/trade/${esc(id)}">${short(id)}</a>`;

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error || `${r.status}`);
  return doc;
}

function banner(text) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// --- pages ------------------------------------------------------------------------------

function networkPage() {
  const n = state.network;
  if (!n || !n.validators) return "<p>Waiting for the first status poll...</p>";
  const rows = n.validators.map((v) => `
    <tr data-node="${esc(v.name)}" class="${v.up ? "up" : "down"}">
      <td>${esc(v.name)}</td><td class="state">${v.up ? "up" : "down"}</td>
      <td class="num">${num(v.height)}</td><td class="num">${num(v.view)}</td>
      <td class="num">${v.leader === undefined ? "-" : "node-" + String(v.leader).padStart(2, "0")}</td>
      <td class="num">${num(v.peers)}</td><td class="num">${num(v.mempool)}</td>
      <td class="mono">${v.state_root ? short(v.state_root) : ""} ${v.up ? (v.root_agrees ? '<span class="ok">agrees</span>' : '<span class="bad">DIFFERS</span>') : ""}</td>
      <td class="muted err" title="${esc(v.error || "")}">${esc(v.error ? v.error.slice(0, 60) : v.halted || v.address)}</td></tr>`).join("");
  const t = n.tolerates || {};
  return `
    <div class="cards">
      <div class="card" id="quorum">quorum<b>${n.q} of ${n.n}</b>tolerates ${t.down_for_liveness} down, ${t.byzantine_for_safety} Byzantine (safety)</div>
      <div class="card" id="up-count">validators up<b class="${n.up === n.n ? "ok" : n.quorum_up ? "warn" : "bad"}">${n.up} of ${n.n}</b>${n.quorum_up ? "a quorum is up" : "NO QUORUM: no block can commit"}</div>
      <div class="card">head<b>${num(n.head)}</b>leader node-${String(n.leader ?? "?").padStart(2, "0")}</div>
      <div class="card">state roots<b class="${n.roots_agree ? "ok" : "bad"}">${n.roots_agree ? "agree" : "DISAGREE"}</b>at each height</div>
      <div class="card">finality p50 / p99<b>${num(n.finality.p50)} / ${num(n.finality.p99)} ms</b>proposal to commit certificate</div>
      <div class="card">throughput<b>${n.throughput.tps} tx/s</b>block time</div>
    </div>
    <section><h2>Validators</h2><table id="validators">
      <tr><th>node</th><th>state</th><th class="num">height</th><th class="num">view</th><th class="num">leader</th><th class="num">peers</th><th class="num">mempool</th><th>state root</th><th></th></tr>${rows}</table></section>
    <div class="charts">
      <section><h2>Finality per block (ms)</h2>${lineChart(n.finality.points, "ms")}</section>
      <section><h2>Transactions per second (block time)</h2>${lineChart(n.throughput.points, "tx/s", "#16a085")}</section>
    </div>`;
}

function txRow(t) {
  const terms = t.terms || {};
  const what = terms.kind === "DVP" || terms.kind === "PENDING_DVP"
    ? `${esc(terms.seller)} &rarr; ${esc(terms.buyer)} ${num(terms.quantity)} ${esc(terms.bond)} against ${num(terms.amount)} ${esc(terms.cash)}`
    : esc(JSON.stringify(terms)).slice(0, 120);
  return `<tr data-tx="${esc(t.tx_id)}" data-code="${esc(t.code)}"><td class="num"><a href="#/block/${t.height}">${t.height}</a></td>
    <td>${txLink(t.tx_id)}</td><td>${esc(t.kind)}</td><td class="${codeClass(t.code)}" title="${esc(t.meaning)}">${esc(t.code)}</td><td>${what}</td></tr>`;
}

function blocksPage() {
  const txs = state.blocks.flatMap((b) => b.transactions.slice().reverse()).slice(0, 200);
  const blocks = state.blocks.slice(0, 30).map((b) => `<tr data-height="${b.height}">
    <td class="num"><a href="#/block/${b.height}">${b.height}</a></td><td>${time(b.time_ms)}</td>
    <td class="num">${b.transactions.length}</td><td class="num">${b.signers.length}</td><td class="mono">${short(b.hash)}</td></tr>`).join("");
  const filtered = state.blocks.some((b) => b.filtered) ? `<p class="muted">Blocks are filtered to ${esc(state.network?.identity)}'s own transactions (access rules).</p>` : "";
  return `${filtered}<div class="charts"><section><h2>Live transactions</h2><table id="live-txs">
      <tr><th class="num">block</th><th>tx id</th><th>kind</th><th>result</th><th>terms</th></tr>${txs.map(txRow).join("")}</table></section>
    <section><h2>Blocks</h2><table id="blocks"><tr><th class="num">height</th><th>time (UTC)</th><th class="num">txs</th><th class="num">signers</th><th>hash</th></tr>${blocks}</table></section></div>`;
}

async function blockPage(height) {
  const b = await getJSON(`/api/block/${encodeURIComponent(height)}`);
  const names = b.signers.map((i) => `node-${String(i).padStart(2, "0")}`).join(", ");
  const events = b.events.length ? `<section><h2>Events (pending trades' outcomes, repo lapses)</h2><table>${b.events.map((e) => `<tr><td>${txLink(e.tx_id)}</td><td class="${codeClass(e.code)}">${esc(e.code)}</td><td>${esc(e.meaning)}</td></tr>`).join("")}</table></section>` : "";
  return `<section id="block"><h2>Block ${b.height}</h2><table>
      <tr><th>time</th><td>${time(b.time_ms)}</td></tr><tr><th>hash</th><td class="mono">${esc(b.hash)}</td></tr>
      <tr><th>state root</th><td class="mono">${esc(b.state_root)}</td></tr>
      <tr><th>results</th><td id="results-proof">${b.filtered ? "each one shown proven by its path" : b.results_proven ? `proven by block ${b.height + 1}'s certified header` : "<b>unproven</b>: the chain's last block; no block certifies its results (none shown) yet"}</td></tr>
      <tr><th>commit certificate</th><td id="signers">${b.signers.length} signers: ${names}</td></tr></table></section>
    <section><h2>Transactions${b.filtered ? " (only those this identity may read)" : ""}</h2><table>
      <tr><th class="num">block</th><th>tx id</th><th>kind</th><th>result</th><th>terms</th></tr>${b.transactions.map(txRow).join("")}</table></section>${events}`;
}

async function tradePage(id) {
  const t = await getJSON(`/api/trade/${encodeURIComponent(id)}`);
  if (t.state === "PENDING") return `<section><h2>Transaction ${esc(id)}</h2><p>In a mempool, not committed yet.</p></section>`;
  const legs = t.legs.map((l) => `<tr><td>${esc(l.leg)}</td><td class="num">${num(l.amount)}</td><td>${esc(l.instrument)}</td><td>${esc(l.from)} &rarr; ${esc(l.to)}</td></tr>`).join("");
  const terms = Object.entries(t.terms).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("");
  return `<section id="trade"><h2>${esc(t.kind)} ${esc(t.tx_id)}</h2>
      <p>Result <b id="trade-code" class="${codeClass(t.code)}">${esc(t.code)}</b>: ${esc(t.meaning)}${t.outcome !== t.code ? `; outcome ${esc(t.outcome)}` : ""}${t.state === "INCLUDED" ? " (the node's word: NOT final until the next block proves it)" : ""}.
      Block <a href="#/block/${t.height}">${t.height}</a>, position ${t.position}, ${time(t.time_ms)}, certified by ${t.signers.length} validators.</p>
      ${legs ? `<h2>Legs (both or neither)</h2><table id="legs"><tr><th>leg</th><th class="num">amount</th><th>instrument</th><th>from &rarr; to</th></tr>${legs}</table>` : ""}
      <h2>Terms</h2><table>${terms}</table></section>
    <section><h2>Receipt</h2><button id="verify">Verify offline against genesis</button> <span id="verify-result"></span>
      <details><summary>receipt JSON</summary><pre class="mono">${esc(JSON.stringify(t.receipt, null, 1))}</pre></details></section>`;
}

async function verify(id) {
  const out = document.getElementById("verify-result");
  out.textContent = "verifying...";
  try {
    const r = await getJSON(`/api/trade/${encodeURIComponent(id)}/verify`, { method: "POST" });
    out.innerHTML = r.valid ? `<b class="ok">valid</b>: ${r.proven.map(esc).join("; ")}` : `<b class="bad">INVALID</b>: ${esc(r.error)}`;
  } catch (e) {
    out.innerHTML = `<b class="bad">error</b>: ${esc(e.message)}`;
  }
}

// Basis points (a number, or a decimal string past 2**53) as a percentage, in integers.
const pct = (bp) => {
  if (bp === null || bp === undefined) return "n/a (no supply)";
  const b = BigInt(bp);
  return `${num((b / 100n).toString())}.${(b % 100n).toString().padStart(2, "0")}%`;
};

// Custody and reserves as `ledger report custody|reserves` judge them; an error here
// (no validator answers) leaves the balances above on the page.
async function attestationsPart() {
  let a;
  try {
    a = await getJSON("/api/attestations");
  } catch (e) {
    return `<section id="attestations"><h2>Custody and reserves</h2><p class="bad">${esc(e.message)}</p></section>`;
  }
  const hidden = a.hidden.length ? `<p class="muted" id="attestations-hidden">Not readable as ${esc(state.network?.identity)} (their issuer, custodian and observers read them): ${a.hidden.map(esc).join(", ")}</p>` : "";
  const custody = a.custody.map((c) => `<tr data-bond="${esc(c.bond)}" data-status="${esc(c.status)}"><td>${esc(c.bond)}</td><td class="num">${num(c.supply)}</td><td class="num">${num(c.custody)}</td>
      <td>${day(c.as_of_ms)}</td><td>${esc(c.attested_by || "(genesis)")}</td><td class="${c.status === "OK" ? "ok" : "bad"}">${c.status === "OK" ? "ok" : "BREAK"}</td><td>${c.breaks.map(esc).join("; ")}</td></tr>`).join("");
  const reserves = a.reserves.map((r) => `<div data-cash="${esc(r.cash)}"><p><b>${esc(r.cash)}</b>: supply ${num(r.supply)}, reserves ${num(r.reserves)} (${r.bill_count} bills ${num(r.bills)}, deposits ${num(r.deposits)}),
      coverage <b class="coverage ${r.coverage_bp === null || BigInt(r.coverage_bp) >= 10000n ? "ok" : "bad"}">${pct(r.coverage_bp)}</b>, as of ${day(r.as_of_ms)} by ${esc(r.attested_by || "(genesis)")}</p>
      <table class="rules">${r.rules.map((x) => `<tr data-pass="${x.pass}"><td class="${x.pass ? "ok" : "bad"}">${x.pass ? "PASS" : "FAIL"}</td><td>${esc(x.rule)}</td><td>${esc(x.found)}</td></tr>`).join("")}</table></div>`).join("");
  return `<section id="attestations"><h2>Custody after block ${num(a.height)}: ${a.breaks} BREAK (as of block time ${time(a.now_ms)})</h2>${hidden}
      <table id="custody"><tr><th>bond</th><th class="num">supply</th><th class="num">custody</th><th>as of</th><th>by</th><th>status</th><th>why</th></tr>${custody}</table></section>
    <section id="reserves"><h2>Reserves: ${a.fails} FAIL</h2>${reserves || '<p class="muted">None readable.</p>'}</section>`;
}

async function positionsPage() {
  const [p, backing] = await Promise.all([getJSON("/api/positions"), attestationsPart()]);
  const ids = p.instruments.map((i) => i.id);
  const head = ids.map((i) => `<th class="num">${esc(i)}</th>`).join("");
  const rows = p.positions.map((r) => `<tr data-account="${esc(r.account)}"><td>${esc(r.account)}</td>${ids.map((i) => `<td class="num">${num(r.amounts[i] || 0)}</td>`).join("")}</tr>`).join("");
  const hidden = p.hidden.length ? `<p class="muted">Not readable as ${esc(state.network?.identity)}: ${p.hidden.map(esc).join(", ")}; supply below counts only what is shown.</p>` : "";
  return `<section><h2>Balances after block ${num(p.height)} (minor units)</h2>${hidden}<table id="positions"><tr><th>account</th>${head}</tr>${rows}
      <tr id="supply"><th>supply${p.supply_complete ? "" : " (visible part)"}</th>${ids.map((i) => `<th class="num">${num(p.supply[i])}</th>`).join("")}</tr></table></section>${backing}`;
}

async function failsPage() {
  const f = await getJSON("/api/fails");
  const codes = Object.keys(f.by_code).sort();
  const [chart, legend] = stackedBars(f.buckets, codes);
  const counts = codes.map((c) => `<tr data-code="${esc(c)}"><td class="code-bad">${esc(c)}</td><td class="num">${num(f.by_code[c])}</td></tr>`).join("");
  const recent = f.recent.map((r) => `<tr data-tx="${esc(r.tx_id)}" data-code="${esc(r.code)}"><td class="num"><a href="#/block/${r.height}">${r.height}</a></td><td>${txLink(r.tx_id)}</td>
      <td class="code-bad">${esc(r.code)}</td><td>${esc(r.kind)}${r.event ? " (end-of-block event)" : ""}</td></tr>`).join("");
  const pending = f.pending.map((p) => `<tr><td>${txLink(p.tx_id)}</td><td class="num">${p.since}</td><td>${esc(p.seller)} &rarr; ${esc(p.buyer)}</td>
      <td class="num">${num(p.quantity_left)} ${esc(p.bond)}</td><td class="num">${num(p.amount_left)} ${esc(p.cash)}</td><td>${time(p.deadline_ms)}</td></tr>`).join("");
  return `<div class="charts"><section><h2>Refused and failed by reason, per ${f.bucket_ms / 1000} s of block time</h2>${chart}<p>${legend}</p></section>
      <section><h2>By reason code</h2><table id="fail-codes"><tr><th>code</th><th class="num">count</th></tr>${counts}</table></section></div>
    <section><h2>Latest refusals</h2><table id="refusals"><tr><th class="num">block</th><th>tx id</th><th>code</th><th>kind</th></tr>${recent}</table></section>
    <section><h2>Settled after recycling: <span id="recycled-count">${num(f.settled_after_recycling)}</span></h2><table id="recycled"><tr><th class="num">block</th><th>tx id</th></tr>${f.recycled_recent.map((r) => `<tr data-tx="${esc(r.tx_id)}"><td class="num"><a href="#/block/${r.height}">${r.height}</a></td><td>${txLink(r.tx_id)}</td></tr>`).join("")}</table></section>
    <section><h2>Pending trades (recycled every block)${f.pending_error ? `: ${esc(f.pending_error)}` : ""}</h2><table id="pending"><tr><th>tx id</th><th class="num">since</th><th>trade</th><th class="num">bonds left</th><th class="num">cash left</th><th>deadline</th></tr>${pending}</table></section>`;
}

// --- routing and the live stream --------------------------------------------------------

function route() {
  const [, page = "network", arg] = location.hash.split("/");
  return { page, arg };
}

async function render() {
  const { page, arg } = route();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page || (page === "block" || page === "trade") && a.dataset.page === "blocks"));
  try {
    const pages = { network: networkPage, blocks: blocksPage, block: () => blockPage(arg), trade: () => tradePage(arg), positions: positionsPage, fails: failsPage };
    view.innerHTML = await (pages[page] || networkPage)();
    view.dataset.page = page;
    const button = document.getElementById("verify");
    if (button) button.onclick = () => verify(arg);
  } catch (e) {
    view.innerHTML = `<section><h2>Error</h2><p class="bad" id="error">${esc(e.message)}</p></section>`;
  }
}

// Live pages re-render on each event; the others only when navigated to.
const LIVE = new Set(["network", "blocks"]);

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.onopen = () => { live.textContent = "live"; live.className = "on"; loadBlocks(); };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "off"; };
  source.addEventListener("network", (e) => {
    state.network = JSON.parse(e.data);
    document.getElementById("who").textContent = `as ${state.network.identity}${state.network.observer ? " (observer)" : ""}`;
    banner(state.network.follow_error);
    if (route().page === "network") render();
  });
  source.addEventListener("block", (e) => {
    const b = JSON.parse(e.data);
    if (b.height <= state.head) return;
    state.head = b.height;
    state.blocks.unshift(b);
    state.blocks.length = Math.min(state.blocks.length, LIVE_BLOCKS_MAX);
    if (route().page === "blocks") render();
  });
}

async function loadBlocks() {
  const doc = await getJSON(`/api/blocks?limit=${LIVE_BLOCKS_MAX}`);
  state.blocks = doc.blocks;
  state.head = doc.blocks.length ? doc.blocks[0].height : 0;
  if (LIVE.has(route().page)) render();
}

async function start() {
  state.network = await getJSON("/api/network");
  document.getElementById("who").textContent = `as ${state.network.identity}`;
  window.addEventListener("hashchange", render);
  await loadBlocks();
  await render();
  connect();
}

start();
