/** The operator page's stylesheet: readable on a phone, no web fonts, no external files. */

export const UI_STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700;
  --muted: #6e7781; --line: #d0d7de; --bar: #54aeff; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { padding: 12px 16px; border-bottom: 1px solid var(--line); display: flex;
  flex-wrap: wrap; gap: 8px 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 8px 16px 32px; max-width: 1100px; }
section { margin-top: 18px; }
h2 { font-size: 15px; margin: 0 0 6px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 20px; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
.yes { color: var(--ok); } .no { color: var(--bad); font-weight: 600; }
.soon { color: var(--warn); font-weight: 600; }
svg.spark { width: 120px; height: 24px; vertical-align: middle; }
svg.spark polyline { fill: none; stroke: var(--bar); stroke-width: 1.5; }
.progress { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden;
  max-width: 360px; }
.progress div { height: 100%; background: var(--bar); }
#events li { font-family: ui-monospace, monospace; font-size: 13px; }
#status-line { color: var(--muted); font-size: 13px; }
.error { color: var(--bad); }
@media (max-width: 600px) { body { font-size: 14px; } .card .value { font-size: 17px; } }
`;
