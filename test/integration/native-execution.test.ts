// Native apps end to end on a 4-node swarm: a static binary compiled here
// (cc -static), and an OCI image built here from it with umoci (no
// registry), each run by the workers' native executors in bubblewrap, at
// trust 1 and trust 3, with the result the WASI wordcount gives.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KindExecutor, nativeWithImages } from '../../node/worker/executors.js'
import { buildBinaryImage, tarLayout } from '../unit/worker/oci-builder.js'
import { ExecSwarm } from './execution-harness.js'

// the wordcount example's output, from C: "<input name> lines=L words=W bytes=B"
const WORDCOUNT_C = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
int main(void) {
  const char *in = getenv("IEXEC_IN"), *out = getenv("IEXEC_OUT"), *name = getenv("IEXEC_INPUT_FILE_NAME_1");
  if (!in || !out || !name) return 2;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", in, name);
  FILE *f = fopen(path, "rb");
  if (!f) return 3;
  long lines = 0, words = 0, bytes = 0; int c, inword = 0;
  while ((c = fgetc(f)) != EOF) {
    bytes++;
    if (c == '\\n') lines++;
    if (isspace(c)) inword = 0; else if (!inword) { inword = 1; words++; }
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/result.txt", out);
  FILE *o = fopen(path, "w");
  if (!o) return 4;
  fprintf(o, "%s lines=%ld words=%ld bytes=%ld\\n", name, lines, words, bytes);
  return fclose(o) == 0 ? 0 : 5;
}
`

describe('execution: native binaries and OCI images on a 4-node swarm (bubblewrap, umoci)', function () {
  this.timeout(240_000)
  let swarm: ExecSwarm | undefined
  let root: string
  let binary: Uint8Array
  let imageTar: Uint8Array
  const stages: string[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'iexec-native-e2e-'))
    await writeFile(join(root, 'wc.c'), WORDCOUNT_C)
    execFileSync('cc', ['-static', '-O1', '-o', join(root, 'wc'), join(root, 'wc.c')])
    binary = new Uint8Array(await readFile(join(root, 'wc')))
    buildBinaryImage(join(root, 'image'), join(root, 'wc'), { name: 'wc' })
    imageTar = new Uint8Array(tarLayout(join(root, 'image')))
  })

  afterEach(async () => {
    await swarm?.close()
    swarm = undefined
    for (const s of stages.splice(0)) await rm(s, { recursive: true, force: true })
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  async function nativeSwarm (): Promise<ExecSwarm> {
    const made: string[] = []
    for (let i = 0; i < 4; i++) {
      const stage = await mkdtemp(join(tmpdir(), 'iexec-native-e2e-stage-'))
      await chmod(stage, 0o711)
      made.push(stage)
      stages.push(stage)
    }
    swarm = await ExecSwarm.create(4, {}, { executor: (i, wasi) => new KindExecutor(wasi, nativeWithImages(made[i])) })
    return swarm
  }

  for (const trust of [1, 3]) {
    it(`runs a static binary and an OCI image at trust ${trust}, with the wordcount's result`, async () => {
      const s = await nativeSwarm()
      const bin = await s.registerModule('wc-native', binary)
      const image = await s.registerModule('wc-image', imageTar)
      const workers = trust === 1 ? [1] : [0, 1, 2]
      for (const app of [bin, image]) {
        const deal = await s.makeDeal({ trust, workers, app })
        await s.waitCompleted(deal.dealid, 0, Number(process.env.NATIVE_E2E_WAIT ?? 120_000))
        const cid = await s.resultsCid(deal.dealid, 0)
        assert.equal(await s.resultText(cid, 3), s.expectedOutput())
      }
    })
  }
})
