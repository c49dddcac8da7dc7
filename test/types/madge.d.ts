// The part of madge's API the import-cycle test uses (madge ships no types).
declare module 'madge' {
  interface MadgeResult {
    obj: () => Record<string, string[]>
    circular: () => string[][]
  }
  interface MadgeConfig {
    baseDir?: string
    fileExtensions?: string[]
    tsConfig?: string
    detectiveOptions?: Record<string, Record<string, unknown>>
  }
  export default function madge (path: string | string[], config?: MadgeConfig): Promise<MadgeResult>
}
