// mandelbrot: renders the Mandelbrot set over [-2, 1] x [-1.5, 1.5] as a
// binary PGM (P5) of W x H pixels with at most ITER iterations per pixel:
// argv = [W, H, ITER] (defaults 256 256 256, each at most 4096). Writes
// $IEXEC_OUT/mandelbrot.pgm, names it in computed.json, prints a summary.
// Compute-heavy for large sizes; only +, - and * on f64, so every IEEE-754
// machine gets the same bytes.
import { writeFile, writeText, env } from "../../common/assembly/wasi-io";

function arg (i: i32, dflt: i32): i32 {
  const args = process.argv;
  if (args.length <= i) return dflt;
  const v = I32.parseInt(args[i]);
  if (v < 1 || v > 4096) {
    process.stderr.write("mandelbrot: W, H and ITER must be between 1 and 4096\n");
    process.exit(2);
  }
  return v;
}

const w = arg(1, 256);
const h = arg(2, 256);
const iter = arg(3, 256);
const header = "P5\n" + w.toString() + " " + h.toString() + "\n255\n";
const head = String.UTF8.encode(header);
const image = new ArrayBuffer(head.byteLength + w * h);
memory.copy(changetype<usize>(image), changetype<usize>(head), <usize>head.byteLength);
const pixels = changetype<usize>(image) + <usize>head.byteLength;
let inside = 0;
for (let y = 0; y < h; y++) {
  const ci = -1.5 + 3.0 * (<f64>y) / (<f64>h);
  for (let x = 0; x < w; x++) {
    const cr = -2.0 + 3.0 * (<f64>x) / (<f64>w);
    let zr = 0.0;
    let zi = 0.0;
    let n = 0;
    while (n < iter && zr * zr + zi * zi <= 4.0) {
      const t = zr * zr - zi * zi + cr;
      zi = 2.0 * zr * zi + ci;
      zr = t;
      n++;
    }
    if (n == iter) inside++;
    // Inside is black; outside shades by escape speed.
    store<u8>(pixels + <usize>(y * w + x), n == iter ? 0 : <u8>(255 - (n * 255) / iter));
  }
}
const out = env("IEXEC_OUT");
writeFile(out + "/mandelbrot.pgm", image);
writeText(out + "/computed.json", "{\"deterministic-output-path\":\"" + out + "/mandelbrot.pgm\"}\n");
process.stdout.write("mandelbrot " + w.toString() + "x" + h.toString() + " iter=" + iter.toString() + " inside=" + inside.toString() + "\n");
