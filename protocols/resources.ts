/**
 * What a provider offers: the one declaration of the resource fields that
 * its config holds (node/config/options.ts NodeConfig), its advert
 * publishes (node/network/adverts.ts AdvertisedResources), its signed
 * record carries (resource-record.ts ResourceRecord) and its market reads
 * (node/market: ProviderSettings, CategoryNeeds). Each of those derives
 * from it, narrowing or widening a field where it must (the config always
 * has `diskMb`; the market holds `priceFloor` as a bigint).
 */
export interface Resources {
  cpus: number
  /** the most memory one run may take, MiB: the provider bids on a category asking at most this */
  memoryMb: number
  /** the most output one run may write, MiB: the provider bids on a category asking at most this (absent in records of older nodes) */
  diskMb?: number
  gpus: number
  /** executors this node can run apps with ('wasi', 'docker') */
  executors: string[]
  /** iExec category (resources and time bound) this node serves */
  category: number
  /** lowest price per task, nRLC, decimal string (bigint-safe in JSON) */
  priceFloor: string
  /** free-form `key:value` tags, e.g. `region:eu`, `energy:green` */
  tags: string[]
}
