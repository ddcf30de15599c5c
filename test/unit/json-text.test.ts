import { describe, expect, it } from "vitest";
import { JsonText, jsonTextOf } from "../../src/storage/json-text.js";

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
});
