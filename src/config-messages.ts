/**
 * How `src/config.ts` words its problems: bad values shown without secrets, and the edit distance
 * that names the setting a misspelt variable probably meant. Apart from the settings so the rules
 * for what a message may reveal sit in one short file.
 */

/**
 * A URL with its password (user-info or a `password` / `sslpassword` parameter) replaced by `***`,
 * for messages. Works on text `URL` cannot parse too, since a malformed value is what gets echoed.
 */
export function redactUrl(raw: string): string {
  return raw
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:).*@/i, "$1***@")
    .replace(/([?&](?:ssl)?password=)[^&#]*/gi, "$1***");
}

/** How a bad value is shown in a configuration error: secrets never, URLs without passwords. */
const REDACT: Readonly<Record<string, (raw: string) => string>> = {
  DATABASE_URL: redactUrl,
  ANALYTICS_JWKS_URL: redactUrl,
  ANALYTICS_JWT_SECRET: () => "(hidden)",
};

/** Variables whose name says they hold a secret (a bearer token too) are hidden, whoever adds them. */
const SECRET_NAME = /SECRET|PASSWORD|PASSPHRASE|CREDENTIAL|PRIVATE_KEY|API_KEY|(?:^|_)TOKEN(?:_|$)/;

/** A bad value as a configuration error shows it. */
export function shownValue(name: string, raw: string): string {
  const redact = REDACT[name];
  if (redact) return JSON.stringify(redact(raw));
  return SECRET_NAME.test(name) ? JSON.stringify("(hidden)") : JSON.stringify(raw);
}

/**
 * Optimal-string-alignment distance (Levenshtein plus swapping two neighbours, the commonest
 * typo), for naming the setting a misspelt variable probably meant.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}
