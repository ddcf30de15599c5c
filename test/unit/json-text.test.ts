import { describe, expect, it } from "vitest";
import { JsonText, jsonHasNul, jsonOf, jsonTextOf, wellFormedJson } from "../../src/util/json-text.js";

describe("JsonText", () => {
  it("stands for its value wherever a row is serialized, not for a wrapper", () => {
    const row = { id: 1, extra_data: new JsonText('{"a":[1,"x"]}') };
    expect(JSON.stringify(row)).toBe('{"id":1,"extra_data":{"a":[1,"x"]}}');
    expect(row.extra_data.parse()).toEqual({ a: [1, "x"] });
  });

  it("serializes an object once for asks in a row, and each object on its own", () => {
    const payload = { region: "eu-west", attempt: 2 };
    const first = jsonTextOf(payload);
    expect(first.text).toBe('{"region":"eu-west","attempt":2}');
    expect(jsonTextOf(payload)).toBe(first);
    const other = jsonTextOf({ region: "eu-west", attempt: 2 });
    expect(other).not.toBe(first);
    expect(other.text).toBe(first.text);
    // Asked again after another object: serialized again, to the same text.
    expect(jsonTextOf(payload).text).toBe(first.text);
  });

  it("replaces lone surrogates by U+FFFD (jsonb refuses their escapes), in keys and values, and nothing else", () => {
    const text = (v: object) => jsonTextOf(v).text;
    expect(text({ k: "a\ud800b" })).toBe('{"k":"a\\ufffdb"}');
    expect(text({ "\udc00": ["\ud83d", "\ud83d\ud83d", "x\udfff"] })).toBe('{"\\ufffd":["\\ufffd","\\ufffd\\ufffd","x\\ufffd"]}');
    expect(JSON.parse(text({ k: "\ud800" }))).toEqual({ k: "\ufffd" });
    // Paired surrogates are characters, not escapes; a literal backslash before "ud800" is text.
    expect(text({ e: "😀", l: "\\ud800", m: "\\\ud800" })).toBe('{"e":"😀","l":"\\\\ud800","m":"\\\\\\ufffd"}');
    expect(wellFormedJson('{"a":1}')).toBe('{"a":1}');
  });

  it("finds U+0000 by the parity of the backslashes before it, in keys and values", () => {
    const nul = (v: object) => jsonHasNul(JSON.stringify(v));
    expect(nul({ k: "\u0000" })).toBe(true);
    expect(nul({ "a\u0000": 1 })).toBe(true);
    expect(nul({ k: "\\u0000" })).toBe(false); // a backslash, then "u0000"
    expect(nul({ k: "\\\u0000" })).toBe(true); // a backslash, then U+0000
    expect(nul({ k: "\\\\u0000" })).toBe(false);
    expect(nul({ k: "x\\", l: "u0000" })).toBe(false); // an escape ends a string; the next starts afresh
    expect(jsonHasNul('{"k":"\\ud800\\n"}')).toBe(false);
  });

  it("gives the JSON as serialized (lone surrogates still escaped) for measuring, and the stored text from the same serialization", () => {
    const payload = { k: "\ud800" };
    expect(jsonOf(payload)).toBe('{"k":"\\ud800"}');
    expect(jsonTextOf(payload).text).toBe('{"k":"\\ufffd"}');
    expect(jsonTextOf(payload)).toBe(jsonTextOf(payload));
    const text = new JsonText('{"a":1}');
    expect(jsonOf(text)).toBe(text.text);
    expect(jsonTextOf(text)).toBe(text);
  });
});
