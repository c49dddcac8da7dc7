import type { Command } from 'commander'
import type { CliIo } from './output.js'
import type { ClientCommandOptions } from './client-commands.js'
import type { WalletExportCommandOptions, WalletFileCommandOptions, WalletImportCommandOptions } from './wallet-commands.js'

// The command tree of issue 24's wallet commands, hung on the `wallet`,
// `account` and `stake` commands program.ts makes. The modules load lazily.

type AddClientOptions = (cmd: Command) => Command

export function registerWalletCommands (io: CliIo, parents: { wallet: Command, account: Command, stake: Command }, addClientOptions: AddClientOptions): void {
  const { wallet, account, stake } = parents
  const fileOptions = (cmd: Command): Command => cmd
    .option('--data-dir <dir>', 'data dir whose wallet.json to write (default: ~/.iexec-p2p or $IEXEC_P2P_DATA_DIR)')
    .option('--password-file <file>', 'file whose first line encrypts the stored wallet (else $IEXEC_P2P_PASSWORD)')
    .option('--dev-unprotected-key', 'store the key unencrypted (dev swarms only)')
    .option('--json', 'print JSON for scripts')

  fileOptions(wallet.command('create')
    .description('write a new random wallet into the data dir (a JSON keystore, scrypt 2^17); never replaces one'))
    .action(async (opts: WalletFileCommandOptions) => {
      const { walletCreateCommand } = await import('./wallet-commands.js')
      await walletCreateCommand(io, opts)
    })

  fileOptions(wallet.command('import')
    .description('write an existing key into the data dir, re-encrypted with the node\'s password; never replaces a wallet')
    .option('--private-key-file <file>', 'file whose first line is the private key (0x and 64 hex digits)')
    .option('--keystore <file>', 'a standard Ethereum JSON keystore (geth, MetaMask, ethers, iexec SDK)')
    .option('--keystore-password-file <file>', 'with --keystore: file whose first line opens it (also the node\'s password unless --password-file)'))
    .action(async (opts: WalletImportCommandOptions) => {
      const { walletImportCommand } = await import('./wallet-commands.js')
      await walletImportCommand(io, opts)
    })

  wallet.command('export')
    .description('print (or write) the data dir\'s wallet as a standard JSON keystore, checked to open with the password')
    .option('--data-dir <dir>', 'data dir (default: ~/.iexec-p2p or $IEXEC_P2P_DATA_DIR)')
    .option('--password-file <file>', 'file whose first line opens the wallet (encrypts the export of a dev key) (else $IEXEC_P2P_PASSWORD)')
    .option('--out <file>', 'write the keystore here, mode 0600, never overwriting (default: stdout)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: WalletExportCommandOptions) => {
      const { walletExportCommand } = await import('./wallet-commands.js')
      await walletExportCommand(io, opts)
    })

  for (const asset of ['rlc', 'eth'] as const) {
    addClientOptions(wallet.command(`send-${asset}`)
      .description(asset === 'rlc' ? 'send RLC from the node\'s wallet to an address' : 'send ETH from the node\'s wallet to an address (gas paid on top)')
      .argument('<to>', 'recipient address')
      .argument('<amount>', asset === 'rlc' ? 'nRLC (5, 5nRLC) or RLC with up to 9 decimals (1.5RLC)' : 'ETH (0.5, 0.5ETH) or wei (1000wei)'))
      .action(async (to: string, amount: string, opts: ClientCommandOptions) => {
        const { walletSendCommand } = await import('./wallet-commands.js')
        await walletSendCommand(io, asset, to, amount, opts)
      })
  }

  addClientOptions(account.command('show').description('wallet ETH and RLC, hub balance, frozen, stake, pending unstake and its unlock time'))
    .action(async (opts: ClientCommandOptions) => {
      const { accountShowCommand } = await import('./wallet-commands.js')
      await accountShowCommand(io, opts)
    })

  // `stake` takes the client options itself (for `stake AMOUNT`), and commander
  // gives an option it knows to the parent even after a subcommand's name
  addClientOptions(stake.command('withdraw')
    .description('take AMOUNT out of the stake: out of the draw now, back in the hub balance with `stake unstake` after the unlock time it prints')
    .argument('<amount>', 'nRLC (5, 5nRLC) or RLC with up to 9 decimals (1.5RLC)'))
    .action(async (amount: string, opts: ClientCommandOptions) => {
      const { stakeWithdrawCommand } = await import('./wallet-commands.js')
      await stakeWithdrawCommand(io, amount, { ...stake.opts<ClientCommandOptions>(), ...opts })
    })

  addClientOptions(stake.command('unstake')
    .description('after the unlock time: move the pending unstake back to the hub balance'))
    .action(async (opts: ClientCommandOptions) => {
      const { stakeUnstakeCommand } = await import('./wallet-commands.js')
      await stakeUnstakeCommand(io, { ...stake.opts<ClientCommandOptions>(), ...opts })
    })
}
