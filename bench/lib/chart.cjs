'use strict'
// A line chart as plain SVG: calls/s (y, linear from 0) against calls in flight
// (x, one evenly spaced column per level, labelled with the level).

const COLORS = ['#d62728', '#1f77b4', '#ff7f0e', '#7f7f7f', '#2ca02c', '#9467bd', '#8c564b', '#17becf', '#e377c2', '#bcbd22']
const DASHES = ['', '', '6 3', '2 3', '', '', '', '4 2 1 2', '', '']

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function niceStep(max, ticks) {
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag
  return 10 * mag
}

function short(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`
  return String(Math.round(v))
}

/** series: [{label, points: [[inflight, callsPerSec], ...]}] */
function renderChart(series, { title = 'calls/s against calls in flight', width = 900, height = 520 } = {}) {
  const levels = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b)
  const maxY = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])))
  const step = niceStep(maxY, 6)
  const top = Math.ceil(maxY / step) * step
  const m = { left: 70, right: 290, top: 40, bottom: 50 }
  const w = width - m.left - m.right
  const h = height - m.top - m.bottom
  const x = (level) => m.left + (levels.length === 1 ? w / 2 : (levels.indexOf(level) / (levels.length - 1)) * w)
  const y = (v) => m.top + h - (v / top) * h
  const o = []
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`)
  o.push(`<rect width="${width}" height="${height}" fill="#fff"/>`)
  o.push(`<text x="${m.left}" y="22" font-size="14" font-weight="600">${esc(title)}</text>`)
  for (let v = 0; v <= top + step / 2; v += step) {
    o.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`)
    o.push(`<text x="${m.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#444">${short(v)}</text>`)
  }
  for (const l of levels) {
    o.push(`<line x1="${x(l).toFixed(1)}" x2="${x(l).toFixed(1)}" y1="${m.top}" y2="${m.top + h}" stroke="#f0f0f0"/>`)
    o.push(`<text x="${x(l).toFixed(1)}" y="${m.top + h + 18}" text-anchor="middle" fill="#444">${l}</text>`)
  }
  o.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + h}" stroke="#888"/>`)
  o.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${m.top + h}" y2="${m.top + h}" stroke="#888"/>`)
  o.push(`<text x="${m.left + w / 2}" y="${height - 10}" text-anchor="middle" fill="#222">calls in flight</text>`)
  o.push(`<text transform="translate(16 ${m.top + h / 2}) rotate(-90)" text-anchor="middle" fill="#222">calls/s</text>`)
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const pts = s.points.filter((p) => Number.isFinite(p[1])).sort((a, b) => a[0] - b[0])
    const d = pts.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')
    const dash = DASHES[i % DASHES.length] ? ` stroke-dasharray="${DASHES[i % DASHES.length]}"` : ''
    o.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`)
    for (const p of pts) o.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3" fill="${color}"><title>${esc(s.label)}: ${Math.round(p[1])} calls/s at ${p[0]} in flight</title></circle>`)
    const ly = m.top + 10 + i * 22
    const lx = m.left + w + 20
    o.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`)
    o.push(`<text x="${lx + 30}" y="${ly + 4}" fill="#222">${esc(s.label)}</text>`)
  })
  o.push('</svg>')
  return o.join('\n') + '\n'
}

module.exports = { renderChart }
