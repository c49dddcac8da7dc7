import type { Command } from 'commander'
import type { ClientCommandOptions } from './client-commands.js'
import type { CliIo } from './output.js'
import type { CategoryCreateOptions, ListOptions } from './operator-commands.js'
import { LIST_ROLE_NAMES, LIST_STATUS_NAMES } from './operator-lists.js'

// Registers the operator's commands (category, kitty, task list | claim,
// deal list | claim); their code loads only when one of them runs.

type AddClientOptions = (cmd: Command) => Command

export { LIST_ROLE_NAMES, LIST_STATUS_NAMES }
const ROLES = LIST_ROLE_NAMES
const STATUSES = LIST_STATUS_NAMES

const cmds = async (): Promise<typeof import('./operator-commands.js')> => await import('./operator-commands.js')

/** Registers `category`, `kitty`, `task list | claim` and `deal list | claim`. */
export function registerOperatorCommands (io: CliIo, parents: { program: Command, task: Command, deal: Command }, addClientOptions: AddClientOptions): void {
  const { program, task, deal } = parents
  const category = program.command('category').description('task categories: each one\'s time, memory and disk bound every run (the hub owner creates them)')
  addClientOptions(category.command('create')
    .description('create a category on the hub (the node\'s wallet must be the hub owner)')
    .argument('<name>', 'the category\'s name, e.g. XL')
    .option('--time <seconds>', 'time reference: each run\'s time bound, and the unit of the deadlines (contribution 7x, final 10x)')
    .option('--memory <mib>', 'each run\'s memory bound, MiB')
    .option('--disk <mib>', 'each run\'s output bound, MiB'))
    .action(async (name: string, opts: CategoryCreateOptions) => { await (await cmds()).categoryCreateCommand(io, name, opts) })
  addClientOptions(category.command('list').description('the hub\'s categories and their limits'))
    .action(async (opts: ClientCommandOptions) => { await (await cmds()).categoryListCommand(io, opts) })

  const kitty = program.command('kitty').description('stakes seized from late schedulers; the hub owner (the treasury) takes them')
  addClientOptions(kitty.command('show').description('what the kitty holds and who may take it'))
    .action(async (opts: ClientCommandOptions) => { await (await cmds()).kittyShowCommand(io, opts) })
  addClientOptions(kitty.command('pay').description('move the whole kitty into this node\'s hub balance (the hub owner only)'))
    .action(async (opts: ClientCommandOptions) => { await (await cmds()).kittyPayCommand(io, opts) })

  const listOptions = (cmd: Command): Command => addClientOptions(cmd
    .option('--role <role>', `this node's part: ${ROLES.join(', ')} (default any)`)
    .option('--limit <n>', 'at most this many entries (default 50)'))
  listOptions(deal.command('list').description('deals this node is part of (requester, worker or scheduler), newest first'))
    .action(async (opts: ListOptions) => { await (await cmds()).dealListCommand(io, opts) })
  listOptions(task.command('list').description('tasks of the deals this node is part of, newest deal first')
    .option('--status <status>', `only tasks in this state: ${STATUSES.join(', ')}`)
    .option('--deal <dealId>', 'only this deal\'s tasks'))
    .action(async (opts: ListOptions) => { await (await cmds()).taskListCommand(io, opts) })

  addClientOptions(task.command('claim')
    .description('after its final deadline, fail a task that did not complete: the requester is refunded (anyone may send it)')
    .argument('<taskId>', 'task id (0x and 64 hex digits)')
    .option('--deal <dealId>', 'the task\'s deal (else found among the hub\'s deals)'))
    .action(async (taskId: string, opts: ListOptions) => { await (await cmds()).taskClaimCommand(io, taskId, opts) })
  addClientOptions(deal.command('claim')
    .description('after its final deadline, claim every task of a deal that did not complete (one transaction per 64)')
    .argument('<dealId>', 'deal id (0x and 64 hex digits)'))
    .action(async (dealId: string, opts: ClientCommandOptions) => { await (await cmds()).dealClaimCommand(io, dealId, opts) })
}
