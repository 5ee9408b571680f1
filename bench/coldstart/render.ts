// Report rendering for the cold-start benchmark: the markdown table and a hand-written SVG bar
// chart (median bars with min–max whiskers, one group per link setting). No measuring here.

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export interface SettingResult {
  setting: string;
  rate_mbit: number;
  rtt_ms: number;
  waterfall_s: number;
  dadi_cold_s: number;
  dadi_warm_s: number;
  spread_s: { waterfall: Spread; dadi_cold: Spread; dadi_warm: Spread };
  cold_over_waterfall: number;
  cold_over_waterfall_runs: number[];
  registry_bytes_dadi_cold: number;
  registry_requests_dadi_cold: number;
  registry_bytes_dadi_warm: number;
  registry_bytes_waterfall: number;
  registry_requests_waterfall: number;
  bytes_read_by_container: number;
  bytes_read_by_container_runs: (number | null)[];
  bytes_read_by_container_warm: number;
  registry_bytes_dadi_cold_runs: number[];
  fetched_over_read_runs: number[];
  breakdown_s: { dadi_cli_start: Spread; dadi_cold_until_mounted: number; dadi_warm_until_mounted: number };
  fetched_over_read: number;
  image_bytes: number;
  image_bytes_uncompressed: number;
  image_bytes_dadi: number;
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const s = (x: Spread) => `${x.median.toFixed(2)} s (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;

export function renderMarkdown(title: string, rows: SettingResult[], runs: number, note?: string): string {
  const lines = [
    `## ${title}`,
    '',
    `Time from launch to the first output of \`python3 -c 'print(1)'\`; median of ${runs} runs (min–max).`,
    '',
    '| link | waterfall (pull+unpack+run) | dadi cold | dadi warm | cold / waterfall | registry bytes, dadi cold | bytes read by container | fetched / read | registry bytes, waterfall |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.rate_mbit >= 1000 ? `${r.rate_mbit / 1000} Gbit/s` : `${r.rate_mbit} Mbit/s`}, ${r.rtt_ms} ms RTT | ${s(r.spread_s.waterfall)} | ${s(r.spread_s.dadi_cold)} | ${s(r.spread_s.dadi_warm)} | ${r.cold_over_waterfall.toFixed(3)}× | ${mb(r.registry_bytes_dadi_cold)} (${r.registry_requests_dadi_cold} requests) | ${mb(r.bytes_read_by_container)} | ${r.fetched_over_read.toFixed(2)}× | ${mb(r.registry_bytes_waterfall)} (${r.registry_requests_waterfall} requests) |`,
    ),
    '',
  ];
  lines.push(
    "Where dadi's time goes (medians): launch → rootfs mounted (CLI start, image resolution, mount) and `dadi --version` alone with the page cache dropped.",
    '',
    '| link | cold: until mounted | warm: until mounted | CLI start alone |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.setting} | ${r.breakdown_s.dadi_cold_until_mounted.toFixed(2)} s | ${r.breakdown_s.dadi_warm_until_mounted.toFixed(2)} s | ${s(r.breakdown_s.dadi_cli_start)} |`,
    ),
    '',
  );
  const r0 = rows[0];
  if (r0) {
    lines.push(
      `Image: ${mb(r0.image_bytes)} compressed OCI (${mb(r0.image_bytes_uncompressed)} uncompressed), ${mb(r0.image_bytes_dadi)} as a DADI image.`,
      '',
    );
  }
  lines.push(
    'Method: Debian bookworm minbase + python3 (2 layers, umoci), pushed as OCI (skopeo) to `docker-registry` and',
    'converted with `dadi convert`. The registry and the host under test sit in two network namespaces joined by a',
    'veth pair shaped with tbf on both ends; a user-space proxy on the host side adds the round trip and counts',
    'requests and response body bytes. Contestants alternate; the page cache is dropped before every run.',
    'Waterfall: `skopeo copy` to an OCI layout, `umoci unpack`, `runc run`. dadi: `dadi run --rm` (built CLI; the',
    'host daemon is already running, as a host service would be); cold = empty block cache, warm = the cache left by',
    'the cold run. "Bytes read by container" = bytes the kernel read from the image block device (FUSE export).',
    '',
    ...(note ? [note, ''] : []),
    'Reproduce (root, Debian 12): `node --import tsx bench/coldstart/run.ts [--runs 5]`.',
    '',
  );
  return `${lines.join('\n')}\n`;
}

const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderSvg(title: string, rows: SettingResult[]): string {
  const W = 760;
  const H = 460;
  const left = 70;
  const right = 20;
  const top = 60;
  const bottom = 110;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const series = [
    { key: 'waterfall' as const, label: 'waterfall: skopeo copy + umoci unpack + runc run', color: '#9aa5b1' },
    { key: 'dadi_cold' as const, label: 'dadi run, cold (empty cache)', color: '#2f7ed8' },
    { key: 'dadi_warm' as const, label: 'dadi run, warm (full cache)', color: '#76b041' },
  ];
  const maxY = Math.max(...rows.flatMap((r) => series.map((x) => r.spread_s[x.key].max)), 0.1);
  const step = niceStep(maxY / 5);
  const yMax = Math.ceil(maxY / step) * step;
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">seconds to first output of python3 -c 'print(1)' (median, whiskers min–max; lower is better)</text>`,
  ];
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`,
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(3)} s</text>`,
    );
  }
  const groupW = plotW / Math.max(rows.length, 1);
  const barW = Math.min(70, (groupW * 0.7) / series.length);
  rows.forEach((r, g) => {
    const gx = left + g * groupW + (groupW - barW * series.length) / 2;
    series.forEach((sr, k) => {
      const sp = r.spread_s[sr.key];
      const x = gx + k * barW;
      const cx = x + barW / 2;
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${y(sp.median).toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(y(0) - y(sp.median)).toFixed(1)}" fill="${sr.color}"/>`,
        `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y(sp.min).toFixed(1)}" y2="${y(sp.max).toFixed(1)}" stroke="#222"/>`,
        `<line x1="${(cx - 6).toFixed(1)}" x2="${(cx + 6).toFixed(1)}" y1="${y(sp.min).toFixed(1)}" y2="${y(sp.min).toFixed(1)}" stroke="#222"/>`,
        `<line x1="${(cx - 6).toFixed(1)}" x2="${(cx + 6).toFixed(1)}" y1="${y(sp.max).toFixed(1)}" y2="${y(sp.max).toFixed(1)}" stroke="#222"/>`,
        `<text x="${cx.toFixed(1)}" y="${(y(sp.max) - 5).toFixed(1)}" text-anchor="middle">${sp.median.toFixed(2)}</text>`,
      );
    });
    const link = `${r.rate_mbit >= 1000 ? `${r.rate_mbit / 1000} Gbit/s` : `${r.rate_mbit} Mbit/s`}, ${r.rtt_ms} ms RTT`;
    const label = `${link} — cold = ${r.cold_over_waterfall.toFixed(3)}× waterfall`;
    out.push(
      `<text x="${(left + g * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(label)}</text>`,
    );
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}" stroke="#444"/>`);
  series.forEach((sr, k) => {
    const lx = left + 10;
    const ly = H - 58 + k * 18;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${sr.color}"/>`,
      `<text x="${lx + 17}" y="${ly}" font-size="11">${esc(sr.label)}</text>`,
    );
  });
  out.push('</svg>', '');
  return out.join('\n');
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
