#!/usr/bin/env node
'use strict'
// The simulated week of churn at bench scale (bench/RESULTS.md "A simulated week
// of churn"; issue 20). npm test runs it at 100 nodes (__test__/kademlia-week.spec.ts);
// here the node count and days are arguments. A measurement, not a test: it prints
// each day as it ends and a JSON summary, and exits 1 if an hour fell below 99 %.
//
//   node --expose-gc bench/week-churn.cjs [nodes=1000] [days=7] [lookups=100] [gets=100]
require('tsx/cjs')
const { runWeek } = require('../__test__/helpers/week-churn.ts')

const [nodes = 1000, days = 7, lookups = 100, gets = 100] = process.argv.slice(2).map(Number)
const started = performance.now()
runWeek({ nodes, days, lookups, gets }, (line) => {
  // every line goes out as it comes, so a run cut short still shows its hours
  process.stderr.write(line + '\n')
}).then((r) => {
  const pct = (a, b) => (b === 0 ? 100 : (100 * a) / b)
  const byDay = r.days.map((d) => {
    const hours = r.hours.slice((d.day - 1) * 24, d.day * 24)
    const sum = (f) => hours.reduce((a, h) => a + f(h), 0)
    return {
      ...d,
      lookupPct: +pct(sum((h) => h.lookupsFound), sum((h) => h.lookups)).toFixed(2),
      getPct: +pct(sum((h) => h.getsFound), sum((h) => h.gets)).toFixed(2),
      worstLookupHourPct: +Math.min(...hours.map((h) => pct(h.lookupsFound, h.lookups))).toFixed(1),
      worstGetHourPct: +Math.min(...hours.map((h) => pct(h.getsFound, h.gets))).toFixed(1),
    }
  })
  const partition = r.hours.find((h) => h.partitioned)
  const summary = {
    nodes,
    days,
    setupSeconds: +r.setupSeconds.toFixed(1),
    seconds: Math.round((performance.now() - started) / 1000),
    calls: r.calls,
    worstLookupPct: r.worstLookupPct,
    worstGetPct: r.worstGetPct,
    partitionHour: partition && { hour: partition.hour, lookups: `${partition.lookupsFound}/${partition.lookups}`, gets: `${partition.getsFound}/${partition.gets}` },
    byDay,
  }
  process.stdout.write(JSON.stringify(summary, null, 1) + '\n')
  process.exitCode = r.worstLookupPct >= 99 && r.worstGetPct >= 99 ? 0 : 1
})
