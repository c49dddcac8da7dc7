import assert from 'node:assert/strict'
import { ArgsError, quoteArgs, splitArgs } from '../../../protocols/args.js'
import { MarketWireError, parseRequestParams } from '../../../protocols/market.js'

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof ArgsError || err instanceof MarketWireError) return err.code
    throw err
  }
  return undefined
}

describe('protocols/args: splitArgs splits an app\'s command line as a POSIX shell would, without expansion', () => {
  const cases: Array<[string, string[]]> = [
    ['', []],
    ['   \t\n ', []],
    ['a b  c', ['a', 'b', 'c']],
    ['a "b c"', ['a', 'b c']],
    ['a \'b c\'', ['a', 'b c']],
    ['a"b c"d', ['ab cd']],
    ['\'\' ""', ['', '']],
    ['a\\ b', ['a b']],
    ['"a\\"b"', ['a"b']],
    ['"a\\\\b"', ['a\\b']],
    // inside double quotes a backslash before another character stays
    ['"a\\nb"', ['a\\nb']],
    // inside single quotes nothing escapes
    ['\'a\\"b\'', ['a\\"b']],
    ['\'it\'\\\'\'s\'', ['it\'s']],
    // a backslash-newline continues the line
    ['ab\\\ncd', ['abcd']],
    ['"ab\\\ncd"', ['abcd']],
    // nothing expands
    ['$HOME `id` * ~ #x', ['$HOME', '`id`', '*', '~', '#x']],
    ['"$HOME"', ['$HOME']],
    ['--name="a b" -v', ['--name=a b', '-v']],
    ['é "ü ß"', ['é', 'ü ß']]
  ]
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => {
      assert.deepEqual(splitArgs(input), want)
    })
  }

  it('refuses what no shell would split, each condition with its own code', () => {
    assert.equal(code(() => splitArgs('a "b c')), 'ARGS_UNTERMINATED_QUOTE')
    assert.equal(code(() => splitArgs('a \'b c')), 'ARGS_UNTERMINATED_QUOTE')
    assert.equal(code(() => splitArgs('"')), 'ARGS_UNTERMINATED_QUOTE')
    // an escaped closing quote does not close
    assert.equal(code(() => splitArgs('"a\\"')), 'ARGS_UNTERMINATED_QUOTE')
    assert.equal(code(() => splitArgs('a\\')), 'ARGS_TRAILING_BACKSLASH')
    assert.equal(code(() => splitArgs('a\0b')), 'ARGS_NUL_CHARACTER')
  })

  it('stays linear on hostile input (long runs of quotes and backslashes)', () => {
    const t0 = Date.now()
    assert.equal(splitArgs('\'\''.repeat(50_000)).length, 1)
    assert.equal(splitArgs('\\\\'.repeat(50_000))[0].length, 50_000)
    assert.equal(splitArgs('"\\\\"'.repeat(20_000))[0].length, 20_000)
    assert.ok(Date.now() - t0 < 5_000)
  })

  it('quoteArgs gives a command line that splits back into the same arguments', () => {
    for (const args of [[], ['a'], ['a', 'b c'], [''], ['it\'s', '"q"', '\\', '$HOME', 'x\ny', ' ', 'é ü']]) {
      assert.deepEqual(splitArgs(quoteArgs(args)), args, JSON.stringify(args))
    }
  })

  it('a request whose iexec_args do not split is refused where params are parsed (gossip, worker)', () => {
    assert.deepEqual(parseRequestParams(JSON.stringify({ iexec_args: 'a "b c"' })), { iexec_args: 'a "b c"' })
    assert.equal(code(() => parseRequestParams(JSON.stringify({ iexec_args: 'a "b c' }))), 'WIRE_INVALID')
  })
})
