import { ProtocolError } from './errors.js'

/**
 * An app's command line (`iexec_args` in the request's params) split into
 * its arguments the way a POSIX shell splits words, without any expansion:
 * the requester signs the string, and every worker must hand the app the
 * same argv, so the rule is fixed here and nowhere else.
 *
 * - blanks (space, tab, newline) outside quotes separate arguments;
 * - `'...'` keeps everything inside as is (no escape inside);
 * - `"..."` keeps everything inside except that a backslash escapes `"`,
 *   `\`, `$`, `` ` `` and a newline (removed); before any other character
 *   the backslash stays;
 * - outside quotes a backslash keeps the next character as is (a
 *   backslash-newline is removed, as a line continuation);
 * - `''` and `""` make an empty argument; quoted and unquoted parts next
 *   to each other make one argument (`a"b c"` is `ab c`);
 * - nothing is expanded: `$HOME`, `` `cmd` ``, `*`, `~` and `#` are plain
 *   characters (as Python's `shlex.split`).
 *
 * @example splitArgs(`a "b c"`) // ['a', 'b c']
 * @throws ArgsError ARGS_UNTERMINATED_QUOTE, ARGS_TRAILING_BACKSLASH, ARGS_NUL_CHARACTER
 */
export function splitArgs (text: string): string[] {
  // an argv entry is a C string: a NUL would cut it short on one side only
  const nul = text.indexOf('\0')
  if (nul >= 0) throw new ArgsError('ARGS_NUL_CHARACTER', 'arguments may not contain a NUL character', { position: nul })
  const out: string[] = []
  let word = ''
  // an argument exists once any part of it is seen, even an empty quoted one
  let inWord = false
  let i = 0
  while (i < text.length) {
    const c = text[i]
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) out.push(word)
      word = ''
      inWord = false
      i++
    } else if (c === '\'') {
      const end = text.indexOf('\'', i + 1)
      if (end < 0) throw new ArgsError('ARGS_UNTERMINATED_QUOTE', 'a single quote is not closed', { position: i, quote: '\'' })
      word += text.slice(i + 1, end)
      inWord = true
      i = end + 1
    } else if (c === '"') {
      const start = i
      i++
      for (;;) {
        if (i >= text.length) throw new ArgsError('ARGS_UNTERMINATED_QUOTE', 'a double quote is not closed', { position: start, quote: '"' })
        const d = text[i]
        if (d === '"') break
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1])) {
          if (text[i + 1] !== '\n') word += text[i + 1]
          i += 2
        } else {
          word += d
          i++
        }
      }
      inWord = true
      i++
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new ArgsError('ARGS_TRAILING_BACKSLASH', 'the arguments end with a backslash that escapes nothing', { position: i })
      if (text[i + 1] !== '\n') {
        word += text[i + 1]
        inWord = true
      }
      i += 2
    } else {
      word += c
      inWord = true
      i++
    }
  }
  if (inWord) out.push(word)
  return out
}

export type ArgsErrorCode =
  /** a `'` or `"` has no closing match */
  | 'ARGS_UNTERMINATED_QUOTE'
  /** the last character is an unquoted backslash */
  | 'ARGS_TRAILING_BACKSLASH'
  /** a NUL character, which no argv entry can hold */
  | 'ARGS_NUL_CHARACTER'

export class ArgsError extends ProtocolError<ArgsErrorCode> {}

/**
 * The command line that `splitArgs` splits back into `args`: each argument
 * single-quoted unless it is made of characters no shell treats specially.
 * @example quoteArgs(['a', 'b c']) // `a 'b c'`
 */
export function quoteArgs (args: readonly string[]): string {
  return args.map((a) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, '\'\\\'\'')}'`).join(' ')
}
