/**
 * A run's bounds come from its deal's category on the hub: the time
 * reference bounds its time, the category's memory and disk its memory and
 * output. A worker may set lower caps (its duties' options: probes and
 * tests); an operator's maxima are its advertised resources, which keep its
 * provider from bidding on a category that asks more.
 */
import { MAX_TIMEOUT_MS } from './options.js'

const MiB = 1024 * 1024

/** A category as the hub defines it (categoryOf). */
export interface CategoryLimits {
  /** seconds */
  timeRef: number
  memoryMiB: number
  diskMiB: number
}

export interface RunCaps {
  maxRunMs?: number
  maxMemoryBytes?: number
  maxOutputBytes?: number
}

export interface RunLimits {
  timeoutMs: number
  maxMemoryBytes: number
  maxOutputBytes: number
}

function capped (value: number, cap: number | undefined): number {
  return cap !== undefined && cap < value ? cap : value
}

/** The executor's bounds of one run of a task of this category. */
export function runLimits (category: CategoryLimits, caps: RunCaps = {}): RunLimits {
  return {
    // a time reference past Node's largest timer (~24.8 days) is that timer
    timeoutMs: capped(Math.min(category.timeRef * 1000, MAX_TIMEOUT_MS), caps.maxRunMs),
    maxMemoryBytes: capped(category.memoryMiB * MiB, caps.maxMemoryBytes),
    maxOutputBytes: capped(category.diskMiB * MiB, caps.maxOutputBytes)
  }
}
