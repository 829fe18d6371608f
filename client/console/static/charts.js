// Small charts as inline SVG strings, drawn from the console's own JSON (no library).

const W = 360, H = 120, PAD = 28;

function scale(values, lo, hi, size) {
  const span = hi - lo || 1;
  return values.map((v) => ((v - lo) / span) * size);
}

// A line of [x, y] points with its maximum labelled; `label` names the y unit.
export function lineChart(points, label, color = "#2f6fd6") {
  if (!points.length) return `<svg width="${W}" height="${H}"><text x="${PAD}" y="${H / 2}">no data yet</text></svg>`;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const ymax = Math.max(...ys, 1);
  const sx = scale(xs, Math.min(...xs), Math.max(...xs), W - 2 * PAD);
  const sy = scale(ys, 0, ymax, H - 2 * PAD);
  const path = sx.map((x, i) => `${i ? "L" : "M"}${(PAD + x).toFixed(1)},${(H - PAD - sy[i]).toFixed(1)}`).join(" ");
  return `<svg width="${W}" height="${H}" role="img" aria-label="${label}">
    <line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#ccc"/>
    <line x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${H - PAD}" stroke="#ccc"/>
    <text x="2" y="${PAD - 4}">${ymax} ${label}</text><text x="2" y="${H - PAD + 4}">0</text>
    <path d="${path}" fill="none" stroke="${color}" stroke-width="1.6"/>
    <circle cx="${(PAD + sx[sx.length - 1]).toFixed(1)}" cy="${(H - PAD - sy[sy.length - 1]).toFixed(1)}" r="2.5" fill="${color}"/></svg>`;
}

const clock = (ms) => new Date(ms).toISOString().slice(11, 19);

const PALETTE = ["#b3261e", "#e07b00", "#8e44ad", "#2f6fd6", "#16a085", "#7f8c8d", "#c0392b", "#d35400"];

// Stacked bars, one per bucket, one colour per code; returns [svg, legend html].
export function stackedBars(buckets, codes) {
  if (!buckets.length) return [`<svg width="${W}" height="${H}"><text x="${PAD}" y="${H / 2}">no refusals yet</text></svg>`, ""];
  const totals = buckets.map((b) => Object.values(b.codes).reduce((a, c) => a + c, 0));
  const ymax = Math.max(...totals, 1);
  const bw = Math.min(24, Math.max(2, (W - 2 * PAD) / buckets.length - 2));
  let bars = "";
  buckets.forEach((b, i) => {
    let y = H - PAD;
    codes.forEach((code, k) => {
      const n = b.codes[code] || 0;
      if (!n) return;
      const h = (n / ymax) * (H - 2 * PAD);
      y -= h;
      bars += `<rect x="${(PAD + i * (bw + 2)).toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${PALETTE[k % PALETTE.length]}"><title>${code}: ${n}</title></rect>`;
    });
  });
  const legend = codes.map((c, k) => `<span style="color:${PALETTE[k % PALETTE.length]}">&#9632;</span> ${c}`).join(" &nbsp; ");
  return [`<svg width="${W}" height="${H}" role="img" aria-label="refusals over time">
    <line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#ccc"/>
    <text x="2" y="${PAD - 4}">${ymax}</text>${bars}
    <text x="${PAD}" y="${H - PAD + 14}">${clock(buckets[0].start_ms)}</text>
    <text x="${W - PAD}" y="${H - PAD + 14}" text-anchor="end">${clock(buckets[buckets.length - 1].start_ms)} UTC</text></svg>`, legend];
}
