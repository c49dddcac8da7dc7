// The bundle's entry (build.ts): the CLI, and the hook the launcher (run.ts)
// saves its code cache on. The polyfills first, as in bin.ts.
import '../common/polyfills.js'
export { runCli } from '../cli/program.js'
export { onNodeReady } from '../cli/ready.js'
