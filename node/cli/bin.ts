#!/usr/bin/env node
import '../polyfills.js'

process.stdout.write('iexec-p2p (skeleton)\n')
