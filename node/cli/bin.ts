#!/usr/bin/env node
import '../common/polyfills.js'
import { runCli } from './program.js'

const code = await runCli(process.argv.slice(2))
// exit now: libp2p and helia keep timers for a few seconds after stop
process.exit(code)
