import type { Command } from 'commander'
import type { CliIo } from './output.js'
import type { OrderPublishCommandOptions, OrderUnpublishCommandOptions } from './order-commands.js'

// The command tree of `order publish` and `order unpublish` (issue 22), hung
// on the `order` command program.ts makes. The module loads lazily.

type AddClientOptions = (cmd: Command) => Command

/** Hangs `publish` and `unpublish` on program.ts's `order` command; the modules load lazily. */
export function registerOrderCommands (io: CliIo, order: Command, addClientOptions: AddClientOptions): void {
  addClientOptions(order.command('publish')
    .description('sign an app, dataset or request order with every field, and gossip it (a request: then collect bids and match, as task submit)')
    .argument('<type>', 'app, dataset or request')
    .option('--app <app>', 'app: the app (this node\'s); dataset: the only app that may read it; request: the app to run (address or name)')
    .option('--any-app', 'dataset: any app may read it (prints a warning)')
    .option('--dataset <address>', 'app: the only dataset it may run on; dataset: the dataset (this node\'s); request: the dataset')
    .option('--requester <address>', 'app, dataset: the only requester that may use it')
    .option('--workerpool <address>', 'app, dataset: the only worker that may run it; request: the only worker that may bid')
    .option('--price <amount>', 'app, dataset: price per task (nRLC, or 1.5RLC); app default 0, dataset: 0 only with --free')
    .option('--free', 'dataset: a price of 0')
    .option('--app-max-price <amount>', 'request: most per task for the app (default: the app order\'s price)')
    .option('--dataset-max-price <amount>', 'request: most per task for the dataset (default: the dataset order\'s price)')
    .option('--max-price <amount>', 'request: most per task for the workers (default: the node\'s defaultMaxPrice)')
    .option('--volume <n>', 'uses (app, dataset: default 1000000) or tasks (request: default 1)')
    .option('--tag <tag...>', 'tags every deal must accept (app, dataset: named tags only)')
    .option('--category <id>', 'request: category')
    .option('--trust <n>', 'request: trust level (workers that must agree)')
    .option('--args <string>', 'request: the app\'s arguments')
    .option('--input <cid...>', 'request: input files (CIDs)')
    .option('--beneficiary <address>', 'request: who the result is for (default: this node)')
    .option('--callback <address>', 'request: the callback address field of the order')
    .option('--bidding-window <ms>', 'request: how long to collect bids')
    .option('--expiry <time>', 'when the order expires (node policy, the hub has none): unix seconds, ISO time or +30m/+2h/+7d (default: never for app and dataset orders, the node\'s requestTtlSeconds for requests)')
    .option('--salt <hex>', 'the order\'s salt (0x and 64 hex digits; its first 8 bytes are its expiry)'))
    .action(async (type: string, opts: OrderPublishCommandOptions) => {
      const { orderPublishCommand } = await import('./order-commands.js')
      await orderPublishCommand(io, type, opts)
    })
  addClientOptions(order.command('unpublish')
    .description('cancel one of this node\'s orders on chain (the hub\'s cancel function) and remove it from every orderbook')
    .argument('[hash]', 'order hash (0x and 64 hex digits)')
    .option('--app <address>', 'with --all: every live order of this app')
    .option('--dataset <address>', 'with --all: every live order of this dataset')
    .option('--all', 'every live order of this node for --app or --dataset'))
    .action(async (hash: string | undefined, opts: OrderUnpublishCommandOptions) => {
      const { orderUnpublishCommand } = await import('./order-commands.js')
      await orderUnpublishCommand(io, hash, opts)
    })
}
