/**
 * A week of churn on simulated time (issue 20), in npm test at 100 nodes; the
 * 1 000-node run is bench/week-churn.cjs (about 15 minutes per simulated day
 * here, too slow for the suite). The scenario is __test__/helpers/week-churn.ts:
 * heavy-tailed sessions replacing about half the nodes a day, 1 % loss each
 * way, a one-hour partition into two halves.
 */
import test from 'ava'
import { runWeek } from './helpers/week-churn'

test('a simulated run repeats exactly for its seed (so the week below passes or fails the same way every time)', async (t) => {
  t.timeout(120_000)
  const small = { nodes: 20, days: 1, keys: 20, lookups: 20, gets: 20, partitionHour: 12 }
  const [a, b] = [await runWeek(small), await runWeek(small)]
  t.is(a.calls, b.calls)
  t.deepEqual(a.hours, b.hours)
  t.true(a.hours.some((h) => h.left > 0), 'nodes came and went')
  const other = await runWeek({ ...small, seed: 21 })
  t.not(other.calls, a.calls, 'another seed, another run')
})

test('a simulated week of churn: every hour, lookups find the nearest live node and gets find every key; memory stays bounded', async (t) => {
  t.timeout(600_000)
  // 100 lookups and 100 gets an hour, so that one miss in an hour is 1 %, not 2.5 %
  const report = await runWeek({ nodes: 100, days: 7, lookups: 100, gets: 100 })
  for (const d of report.days)
    t.log(`day ${d.day}: ${d.left} left (${d.left} % of 100), heap ${d.heapMiB} MiB, ${d.contacts} contacts, ${d.pendingTimers} timers, ${d.seconds} s`)
  const low = report.hours.filter((h) => h.lookupsFound < h.lookups * 0.99 || h.getsFound < h.gets * 0.99)
  for (const h of low) t.log(`hour ${h.hour}${h.partitioned ? ' (partitioned)' : ''}: lookups ${h.lookupsFound}/${h.lookups}, gets ${h.getsFound}/${h.gets}`)
  t.log(`worst hour: lookups ${report.worstLookupPct.toFixed(1)} %, gets ${report.worstGetPct.toFixed(1)} %; ${report.calls} calls`)

  t.is(report.hours.length, 7 * 24)
  t.true(report.hours.every((h) => h.lookups >= 80 && h.gets >= 80), 'every hour judged its lookups and gets')
  t.true(report.hours.some((h) => h.partitioned), 'the partition happened')
  // the rate: about half the network replaced per simulated day
  for (const d of report.days) t.true(d.left >= 30 && d.left <= 80, `day ${d.day}: ${d.left} of 100 nodes left`)
  t.true(report.worstLookupPct >= 99, `lookup success fell to ${report.worstLookupPct.toFixed(1)} % in an hour`)
  t.true(report.worstGetPct >= 99, `key durability fell to ${report.worstGetPct.toFixed(1)} % in an hour`)
  // bounded: the last day's heap and timers are no more than the first day's plus a margin
  const [first, last] = [report.days[0], report.days[report.days.length - 1]]
  t.true(last.heapMiB <= first.heapMiB * 1.5 + 8, `heap grew from ${first.heapMiB} to ${last.heapMiB} MiB`)
  t.true(last.pendingTimers <= first.pendingTimers * 2 + 500, `timers grew from ${first.pendingTimers} to ${last.pendingTimers}`)
})
