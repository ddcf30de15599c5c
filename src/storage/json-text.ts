/**
 * A JSON column value that is serialized already. Hot paths that can write a value's JSON faster
 * than `JSON.stringify` of an object built for it (device metrics: names known once per message,
 * values in an array) hand the writer this instead of the object; the writer stores `text` as is.
 */
export class JsonText {
  /** @param text - valid JSON; the database rejects the row otherwise. */
  constructor(readonly text: string) {}

  /** The value itself, for code that serializes a row (logs, tests). */
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
