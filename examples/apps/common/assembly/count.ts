// Counting shared by wordcount and foldercount: lines, words (runs of
// non-space bytes) and bytes of one file, as one report line.

function isSpace (c: u8): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x0b || c == 0x0c;
}

export function count (name: string, data: ArrayBuffer): string {
  let lines = 0;
  let words = 0;
  let inWord = false;
  const n = data.byteLength;
  for (let i = 0; i < n; i++) {
    const c = load<u8>(changetype<usize>(data) + <usize>i);
    if (c == 0x0a) lines++;
    if (isSpace(c)) {
      inWord = false;
    } else if (!inWord) {
      inWord = true;
      words++;
    }
  }
  return name + " lines=" + lines.toString() + " words=" + words.toString() + " bytes=" + n.toString() + "\n";
}
