// decodeUtf8Strict() is the fatal decoder's verdict at the lenient decoder's speed: for any bytes
// it returns the same text or throws the same way, U+FFFD that was really sent included.
// utf8Length() counts what TextEncoder would write for well-formed text, whole or a slice of it.

import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeUtf8Strict, utf8Length } from "../../src/core/bytes.ts";

const fatal = new TextDecoder("utf-8", { fatal: true });

function verdict(decode: (bytes: Uint8Array) => string, bytes: Uint8Array): string {
  try {
    return `ok ${decode(bytes)}`;
  } catch (error) {
    assert.ok(error instanceof TypeError, String(error));
    return "refused";
  }
}

/** Valid UTF-8 with damage spliced in: stray continuation bytes, overlongs, surrogates, U+FFFD. */
const bytes = fc.tuple(
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.array(
    fc.constantFrom(
      [0xff],
      [0x80],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
      [0xef, 0xbf, 0xbd],
      [0xef, 0xbb, 0xbf],
    ),
    { maxLength: 3 },
  ),
  fc.nat(),
).map(([text, inserts, at]) => {
  const valid = [...new TextEncoder().encode(text)];
  for (const insert of inserts) valid.splice(at % (valid.length + 1), 0, ...insert);
  return Uint8Array.from(valid);
});

Deno.test("property: decodeUtf8Strict() agrees with the fatal decoder", () => {
  fc.assert(
    fc.property(fc.oneof(bytes, fc.uint8Array({ maxLength: 40 })), (input) => {
      assert.equal(verdict(decodeUtf8Strict, input), verdict((b) => fatal.decode(b), input));
    }),
    { numRuns: 5000 },
  );
});

Deno.test("decodeUtf8Strict() keeps a U+FFFD that was sent and refuses an invalid byte", () => {
  assert.equal(decodeUtf8Strict(new Uint8Array([0x61, 0xef, 0xbf, 0xbd])), "a\uFFFD");
  assert.throws(() => decodeUtf8Strict(new Uint8Array([0x61, 0xff])), TypeError);
});

Deno.test("property: utf8Length() is the encoded length of well-formed text and of its slices", () => {
  const utf8 = new TextEncoder();
  const pieces = fc.array(fc.string({ unit: "grapheme", maxLength: 6 }), { maxLength: 6 });
  fc.assert(
    fc.property(pieces, fc.nat(), (parts, pick) => {
      const text = parts.join("");
      assert.equal(utf8Length(text), utf8.encode(text).byteLength);
      // A slice between two parts' boundaries never cuts a surrogate pair.
      const cut = pick % (parts.length + 1);
      const start = parts.slice(0, cut).join("").length;
      const end = start + (parts[cut] ?? "").length;
      assert.equal(utf8Length(text, start, end), utf8.encode(text.slice(start, end)).byteLength);
    }),
    { numRuns: 2000 },
  );
});
