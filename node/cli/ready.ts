// "The node is ready": what `start` announces once its node runs and its
// API answers. The bundle's launcher (launch/run.ts) saves its code cache
// then, when the start's functions are compiled.
const listeners: Array<() => void> = []

export function onNodeReady (listener: () => void): void {
  listeners.push(listener)
}

export function nodeReady (): void {
  for (const listener of listeners.splice(0)) listener()
}
