// Loaded before every test file: Node 20 polyfills that libp2p 3 needs.
import '../node/common/polyfills.ts'
