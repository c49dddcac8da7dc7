// NVIDIA GPUs, found with nvidia-smi where it is installed. A node with one
// or more advertises their count and offers the 'gpu' tag, so that requests
// that need a GPU (the tag's bit, or `iexec_p2p_tags: ["gpu"]`) match only
// nodes that have one; a node without them does not offer the tag, whatever
// its config says. Native runs get the GPUs' device nodes.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { which } from './native-host.js'

export interface GpuInfo {
  index: number
  model: string
  memoryMb: number
}

export const GPU_TAG = 'gpu'

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi (text: string): GpuInfo[] {
  const out: GpuInfo[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const parts = line.split(',').map((p) => p.trim())
    if (parts.length < 3) continue
    const index = Number(parts[0])
    const memoryMb = Number(parts[parts.length - 1])
    const model = parts.slice(1, -1).join(',')
    if (!Number.isSafeInteger(index) || index < 0 || !Number.isFinite(memoryMb) || memoryMb < 0 || model === '') continue
    out.push({ index, model: model.slice(0, 128), memoryMb: Math.floor(memoryMb) })
    if (out.length >= 64) break
  }
  return out
}

/** The GPUs nvidia-smi reports (none when it is absent, fails or says nothing readable). */
export function detectGpus (env: NodeJS.ProcessEnv = process.env): GpuInfo[] {
  // spawning to learn it is absent costs a node's start more than this look
  if (env.PATH !== undefined && which('nvidia-smi', env.PATH) === undefined) return []
  try {
    const text = execFileSync('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], {
      env, timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 20
    }).toString()
    return parseNvidiaSmi(text)
  } catch {
    return []
  }
}

/** The tags a node offers given its GPUs: 'gpu' added when it has one, removed when it has none. */
export function tagsWithGpus (tags: readonly string[], gpus: readonly GpuInfo[]): string[] {
  const rest = tags.filter((t) => t !== GPU_TAG)
  return gpus.length > 0 ? [...rest, GPU_TAG] : rest
}

/** Device nodes a native run needs for the GPUs (those present). */
export function gpuDeviceNodes (gpus: readonly GpuInfo[], dev = '/dev'): string[] {
  if (gpus.length === 0) return []
  const wanted = new Set(['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset', ...gpus.map((g) => `nvidia${g.index}`)])
  let present: string[] = []
  try {
    present = readdirSync(dev)
  } catch {}
  return present.filter((n) => wanted.has(n)).map((n) => `${dev}/${n}`).filter((p) => existsSync(p))
}
