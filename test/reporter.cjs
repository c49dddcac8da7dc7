// Mocha's spec reporter plus the one closing line CI reads: "N passed, N failed".
'use strict'
const Mocha = require('mocha')
const { Spec } = Mocha.reporters
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants

class SummaryReporter extends Spec {
  constructor (runner, options) {
    super(runner, options)
    let passed = 0
    let failed = 0
    let pending = 0
    runner.on(EVENT_TEST_PASS, () => { passed++ })
    runner.on(EVENT_TEST_FAIL, () => { failed++ })
    runner.on(EVENT_TEST_PENDING, () => { pending++ })
    runner.once(EVENT_RUN_END, () => {
      // a skipped test counts as a failure: nothing may be left pending
      process.stdout.write(`\n${passed} passed, ${failed + pending} failed\n`)
    })
  }
}

module.exports = SummaryReporter
