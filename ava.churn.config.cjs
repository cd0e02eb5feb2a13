// The churn spec alone (scripts/test-all.sh): its assertions are latencies, so it runs with no other spec beside it.
const { ava } = require('./package.json')
module.exports = { ...ava, files: ['__test__/kademlia-churn.spec.ts'], concurrency: 1 }
