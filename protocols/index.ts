/** What crosses the wire, shared by the node and the tests. */
export * from './topics.js'
export * from './resource-record.js'
export * from './eip712.js'
export * from './market.js'
export * from './key-release.js'
export * from './execution.js'
export * from './args.js'
export * from './failure-report.js'
